"""Many short documents encoded as one text joined by the eos token's text, where that is proven equal.

A store holds each document's ids followed by eos.  Encoded one by one, short
documents (CSV and JSON rows, a list of texts) cost the engine twice what the
same bytes cost as one text (rows of ~40 bytes, fastokens, one thread: 0.52 s
against 0.24 s): every text is an object to convert, a result to allocate and
offsets to write.  :class:`JoinedDocuments` encodes ``d1 E d2 E ... dn E``, E
the eos token's text, in one engine call with added tokens recognized, and
takes the result only where it is ``ids(d1) eos ids(d2) eos ... ids(dn) eos``:

1. *Structure* (checked once): E is an added token that the engine cuts out of
   the text before anything else runs: not ``normalized``, no ``lstrip``,
   ``rstrip`` or ``single_word``.  E has no border (no proper prefix that is
   also a suffix), so no occurrence of E can start inside a document and end
   inside the E inserted after it.
2. *Independence* (probed once): the engine encodes the text between two added
   tokens as if it were a whole input.  Probe documents (adversarial pieces,
   generated prose, empty and whitespace-only ones) joined give their ids one
   by one.  This refuses, for example, Metaspace's ``prepend_scheme="first"``,
   which marks only the first word of the whole input.
3. *Every call*: the output holds exactly ``n`` eos ids, the last one at its
   end, and no id of another added token.  So no document held E's text (it
   would add an eos), no inserted E was lost, and no other added token was
   cut out across or inside a document (its id would show).

Where a call fails 3 it returns None and the caller encodes the documents one
by one (a document holding the text ``<|endoftext|>`` does that to its chunk).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fastpath import FastPathRefused, probe_texts

__all__ = ["JoinedDocuments", "build_joined_documents", "has_border", "model_made_contents"]


#: After this many declined calls in a row (each a wasted engine call: the input holds the eos text, or
#: added tokens, chunk after chunk), a joiner tries only one call in RETRY_EVERY until one is taken.
GIVE_UP_AFTER = 8
RETRY_EVERY = 64


class JoinedDocuments:
    """Encodes documents with eos after each in one engine call.  Build it with :func:`build_joined_documents`."""

    def __init__(self, engine: Any, *, eos_text: str, eos_id: int, added: list[tuple[str, int]],
                 model_made: list[str], vocab_size: int):
        self.engine, self.eos_text, self.eos_id = engine, eos_text, eos_id
        self.declined_in_a_row = self.skipped = 0
        # Added tokens the model never makes: seen in the output, they were cut out of the text.
        self._foreign = np.zeros(max([vocab_size, eos_id + 1, *[i + 1 for _, i in added]]), dtype=bool)
        self._foreign[[i for content, i in added if i != eos_id and content not in model_made]] = True
        # Added tokens the model also makes (an unknown-word token, byte-fallback pieces): their ids
        # prove nothing, so their text must not be in the input (looked for by 3-character prefix).
        self._prefixes = sorted({content[:3] for content in model_made if content != eos_text})

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """(uint32 ids with eos after each text, int64 end of each text just past its eos), or None (see 3).

        ``texts`` may be a sequence with a ``separated`` attribute, ``(text,
        separator)``: its documents are ``text.split(separator)``, joined by
        replacing the separator (:class:`mmtok.inputs.chunk.SeparatedTexts`).
        """
        if not texts:
            return np.empty(0, np.uint32), np.empty(0, np.int64)
        if self.declined_in_a_row >= GIVE_UP_AFTER:
            self.skipped += 1
            if self.skipped % RETRY_EVERY:
                return None
        found = self._encode(texts)
        self.declined_in_a_row = 0 if found is not None else self.declined_in_a_row + 1
        return found

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        separated = getattr(texts, "separated", None)  # (text, separator): the documents as one text already
        if separated is not None:
            text, separator = separated
            joined = (text if separator == self.eos_text else text.replace(separator, self.eos_text)) + self.eos_text
        else:
            joined = self.eos_text.join(texts) + self.eos_text
        if any(prefix in joined for prefix in self._prefixes):
            return None
        ids = self.engine.encode_marked(joined, self.eos_text)
        ends = np.flatnonzero(ids == self.eos_id)
        if ends.shape[0] != len(texts) or ends[-1] != ids.shape[0] - 1:
            return None
        if ids.max(initial=0) >= self._foreign.shape[0] or self._foreign[ids].any():
            return None
        return ids, ends + 1


def has_border(text: str) -> bool:
    """Whether a proper prefix of ``text`` is also its suffix: then an occurrence of ``text`` can overlap another."""
    return any(text[:size] == text[-size:] for size in range(1, len(text)))


def model_made_contents(spec: dict) -> list[str]:
    """The added tokens (contents) whose ids the tokenizer.json's model may also give to plain text.

    Those in the model's own vocabulary (BERT's ``[UNK]``, byte-fallback
    ``<0x41>``, tokens a trainer put in both lists), all of them when the
    vocabulary is of an unknown shape.
    """
    model, added = spec.get("model") or {}, spec.get("added_tokens") or []
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        ids = set(vocab.values())
    elif isinstance(vocab, list):  # Unigram: [piece, score] by id
        ids = set(range(len(vocab)))
    else:
        return [token["content"] for token in added]
    return [token["content"] for token in added if token["id"] in ids or token["content"] == model.get("unk_token")]


def build_joined_documents(engine: Any, backend: Any, added_tokens: list[dict], model_made: list[str], *,
                           eos_text: str, eos_id: int, vocab_size: int) -> JoinedDocuments:
    """The joined encoder for ``engine`` (a fast engine with ``encode_marked``), or FastPathRefused saying why not.

    ``backend`` is the ``tokenizers`` reference the engine was proven equal to;
    ``added_tokens`` the tokenizer.json's list, ``model_made`` what
    :func:`model_made_contents` found in it.
    """
    if not hasattr(engine, "encode_marked"):
        raise FastPathRefused(f"the {getattr(engine, 'name', 'tokenizers')} engine cannot recognize an added token "
                              "on request")
    entry = next((token for token in added_tokens if token.get("content") == eos_text), None)
    if entry is None:
        raise FastPathRefused(f"eos {eos_text!r} is not an added token")
    flags = [flag for flag in ("normalized", "lstrip", "rstrip", "single_word") if entry.get(flag)]
    if flags:
        raise FastPathRefused(f"eos {eos_text!r} is matched with {', '.join(flags)}")
    if has_border(eos_text):
        raise FastPathRefused(f"eos {eos_text!r} has a border: an occurrence could straddle a joint")
    joiner = JoinedDocuments(engine, eos_text=eos_text, eos_id=eos_id, vocab_size=vocab_size, model_made=model_made,
                             added=[(token["content"], int(token["id"])) for token in added_tokens])
    if any(prefix in eos_text for prefix in joiner._prefixes):
        raise FastPathRefused(f"eos {eos_text!r} holds the start of an added token the model also makes")
    contents = [token["content"] for token in added_tokens]
    documents = probe_texts() + ["", " ", "x", "", "\n", " leading", "trailing ", "\n\nnewlines\n"]
    documents = [text for text in documents if not any(content in text for content in contents)]
    for start in range(0, len(documents), 64):
        group = documents[start:start + 64]
        want = []
        for encoding in backend.encode_batch(group, add_special_tokens=False):
            want += encoding.ids + [eos_id]
        found = joiner._encode(group)
        if found is None or found[0].tolist() != want:
            raise FastPathRefused("documents encoded joined differ from one by one (the engine does not encode "
                                  "the text between added tokens as a whole input)")
    return joiner
