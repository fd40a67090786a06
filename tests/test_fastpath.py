"""The tiktoken fast path is used only where it gives exactly the reference (tokenizers) ids."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from mmtok.base.errors import TokenizerError
from mmtok.tokenize import fastpath
from mmtok.tokenize.tokenizer import (
    default_tokenizer,
    load_tokenizer,
    tokenizer_from_json,
)

LLAMA3_STYLE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def gpt2_spec() -> dict:
    return json.loads(default_tokenizer().to_json())


def from_spec(spec: dict, **options):
    return tokenizer_from_json(json.dumps(spec), **options)


def reference_batch(tok, texts: list[str]) -> list[list[int]]:
    return [encoding.ids for encoding in tok.backend.encode_batch_fast(texts, add_special_tokens=False)]


def assert_refused_or_identical(tok, pieces: list[str]) -> str:
    """The only two acceptable outcomes for any tokenizer; returns which one happened."""
    if tok.engine == "tokenizers":
        assert tok.fast_path_refusal
        return "refused"
    assert tok.encode_batch(pieces) == reference_batch(tok, pieces)
    return "identical"


@pytest.fixture(scope="module")
def pieces(real_text) -> list[str]:
    return [real_text[i : i + 65536] for i in range(0, len(real_text), 65536)]


@pytest.fixture(scope="module")
def gpt2_ids(real_text) -> list[int]:
    """The reference ids of the whole real_text, as one string."""
    return default_tokenizer().backend.encode(real_text, add_special_tokens=False).ids


# --- GPT-2 gets the fast path, and it is exact -----------------------------------------------------


def test_gpt2_uses_tiktoken_with_identical_ids_on_real_text(real_text, gpt2_ids, pieces):
    tok = load_tokenizer(engine="tiktoken")
    assert tok.engine == "tiktoken" and tok.fast_path_refusal is None
    assert tok.encode(real_text) == gpt2_ids
    assert tok.encode_batch(pieces) == reference_batch(tok, pieces)


@pytest.mark.parametrize("engine", ["tiktoken", "auto"])
def test_gpt2_whole_vocabulary_as_text_is_identical(engine):
    tok = load_tokenizer(engine=engine)
    table = fastpath._byte_decoder()
    texts = [token.translate(table).encode("latin-1").decode("utf-8", "replace")
             for token in json.loads(tok.to_json())["model"]["vocab"]]
    assert tok.encode_batch(texts) == reference_batch(tok, texts)


def test_gpt2_allow_special_fast_path_is_identical(pieces):
    tok = load_tokenizer(allow_special=True, engine="tiktoken")
    assert tok.engine == "tiktoken"
    texts = [piece[:5000] + "<|endoftext|>" + piece[5000:6000] + " <|endoftext|><|endoftext|>\n"
             for piece in pieces[:8]]
    assert tok.encode_batch(texts) == reference_batch(tok, texts)
    assert tok.encode(texts[0]).count(50256) == 3


def test_engine_tokenizers_forces_the_reference():
    tok = load_tokenizer(engine="tokenizers")
    assert tok.engine == "tokenizers"
    assert tok.encode("Hello world") == [15496, 995]


def test_ids_not_in_merge_order_are_mapped_back(gpt2_ids, real_text):
    spec = gpt2_spec()
    permutation = np.random.default_rng(7).permutation(50257)
    spec["model"]["vocab"] = {token: int(permutation[i]) for token, i in spec["model"]["vocab"].items()}
    spec["added_tokens"][0]["id"] = int(permutation[50256])
    tok = from_spec(spec, engine="tiktoken")
    assert tok.engine == "tiktoken"
    assert tok.eos_id == permutation[50256]
    assert tok.encode(real_text) == permutation[np.asarray(gpt2_ids)].tolist()


def test_trained_byte_level_bpe_is_refused_or_identical(docs_prose, pieces):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    # The special token comes first, so ids are not ranks: the rank -> id table is exercised.
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([docs_prose], trainer=trainer)
    assert assert_refused_or_identical(load_tokenizer(backend), pieces) == "identical"


# --- what tiktoken cannot mirror is refused --------------------------------------------------------


def test_a_different_split_regex_is_mirrored_exactly(pieces):
    spec = gpt2_spec()
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_STYLE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    tok = from_spec(spec)
    assert assert_refused_or_identical(tok, pieces) == "identical"
    assert tok.encode(pieces[0]) != default_tokenizer().encode(pieces[0])  # the regex really is different


def test_a_regex_that_skips_characters_is_refused(pieces):
    # tiktoken drops text no match covers; tokenizers keeps it as pieces: the probe must notice.
    spec = gpt2_spec()
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"\p{L}+|\p{N}+"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    tok = from_spec(spec)
    assert assert_refused_or_identical(tok, pieces) in ("refused", "identical")  # fastokens may mirror it
    with pytest.raises(fastpath.FastPathRefused, match="tiktoken and tokenizers disagree"):
        fastpath.build_fast_encoder(tok.backend, spec, allow_special=False)


def test_non_special_added_token_is_refused_and_forcing_tiktoken_explains(pieces):
    spec = gpt2_spec()
    spec["added_tokens"].append({"id": 50257, "content": "import", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": False})
    assert assert_refused_or_identical(from_spec(spec), pieces) in ("refused", "identical")
    explained = "engine='tiktoken' cannot.*non-special added token 'import'.*engine='auto'"
    with pytest.raises(TokenizerError, match=explained):
        from_spec(spec, engine="tiktoken")


def test_normalizer_is_refused(pieces):
    spec = gpt2_spec()
    spec["normalizer"] = {"type": "Lowercase"}
    tok = from_spec(spec)
    assert assert_refused_or_identical(tok, pieces) in ("refused", "identical")
    assert tok.encode("Hello") == tok.encode("hello")
    with pytest.raises(fastpath.FastPathRefused, match="normalizer"):
        fastpath.build_fast_encoder(tok.backend, spec, allow_special=False)


@pytest.mark.parametrize("change, reason", [
    ("dropout", "dropout"),
    ("add_prefix_space", "add_prefix_space"),
    ("duplicate merge", "two merges"),
    ("metaspace", "not byte-level"),
])
def test_shapes_tiktoken_cannot_express_are_refused(change, reason):
    spec = gpt2_spec()
    if change == "dropout":
        spec["model"]["dropout"] = 0.1
    elif change == "add_prefix_space":
        spec["pre_tokenizer"]["add_prefix_space"] = True
    elif change == "duplicate merge":
        spec["model"]["merges"].append(["Ġt", "he"])  # "Ġthe" is already made by a merge
    else:
        spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    with pytest.raises(fastpath.FastPathRefused, match=reason):
        fastpath.build_fast_encoder(None, spec, allow_special=False)


def test_the_probe_catches_a_wrong_id_table():
    tok = load_tokenizer(engine="tiktoken")
    table = np.arange(50257)
    table[[262, 290]] = table[[290, 262]]  # " the" and " and" swapped: a plausible mapping bug
    wrong = fastpath.FastEncoder(tok._fast.encoding, table, allow_special=False)
    with pytest.raises(fastpath.FastPathRefused, match="disagree"):
        fastpath.verify(wrong, tok.backend, fastpath.probe_texts())


# --- parallelism -----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["fastokens", "tiktoken", "tokenizers"])
def test_encode_batch_releases_the_gil(engine, pieces):
    """While encode_batch runs in one thread, another keeps running Python code."""
    tok = load_tokenizer(engine=engine)
    # About 0.3 s of work for each engine (the fast ones are several times faster).
    texts = [piece + str(i) for i, piece in enumerate(pieces * 3 if engine == "fastokens" else
                                                      pieces if engine == "tiktoken" else pieces[:6])]
    done, gaps = threading.Event(), []

    def work():
        tok.encode_batch(texts)
        done.set()

    worker = threading.Thread(target=work)
    start = last = time.perf_counter()
    worker.start()
    while not done.is_set():
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    elapsed = time.perf_counter() - start
    # Holding the GIL would freeze this loop for the whole call; released, it only sees scheduler slices.
    assert max(gaps) < max(0.5 * elapsed, 0.1)


@pytest.mark.parametrize("allow_special", [False, True])
def test_encode_arrays_equals_encode_batch(pieces, allow_special):
    # The build's hot path must give the very ids of the list API, for both engines and permuted ids.
    spec = gpt2_spec()
    permutation = np.random.default_rng(3).permutation(50257)
    spec["model"]["vocab"] = {token: int(permutation[i]) for token, i in spec["model"]["vocab"].items()}
    spec["added_tokens"][0]["id"] = int(permutation[50256])
    texts = [piece + " <|endoftext|>" for piece in pieces[:6]] + ["", "x"]
    for tok in (load_tokenizer(allow_special=allow_special), load_tokenizer(engine="tokenizers", allow_special=allow_special),
                load_tokenizer(engine="tiktoken", allow_special=allow_special),
                from_spec(spec, allow_special=allow_special), from_spec(spec, allow_special=allow_special, engine="tiktoken")):
        arrays = tok.encode_arrays(texts)
        assert [a.tolist() for a in arrays] == reference_batch(tok, texts)
