"""The tokenizer layer: loading routes, eos, special tokens, fingerprint and chunk-cut rules."""

from __future__ import annotations

import json
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtok.base.errors import TokenizerError
from mmtok.tokenize.fingerprint import fingerprint_of
from mmtok.tokenize.tokenizer import (
    default_tokenizer,
    load_tokenizer,
    tokenizer_from_json,
)

DATA = pathlib.Path(__file__).resolve().parents[1] / "mmtok" / "data"
VOCAB, MERGES = DATA / "gpt2_vocab.json", DATA / "gpt2_merges.txt"
# The GPT-2 fingerprint is part of every store made with it: changing it orphans those stores.
GPT2_FINGERPRINT = "sha256:4276596a3a14453bc936462e38c9f177ededb4b4e22e8598d56ad889a7795ac8"
SAMPLE = "Hello world! It's 2024; we'll see.\r\n\tnaïve café 日本語 🙂 <|endoftext|> x  y\n"


def gpt2_spec() -> dict:
    return json.loads(default_tokenizer().to_json())


def from_spec(spec: dict, **options):
    return tokenizer_from_json(json.dumps(spec), **options)


@pytest.fixture(scope="module")
def metaspace_tokenizer(docs_prose):
    """A small SentencePiece-like BPE (Metaspace pre-tokenizer), trained on the docs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "</s>"], show_progress=False)
    backend.train_from_iterator(docs_prose.splitlines(), trainer=trainer)
    return load_tokenizer(backend)


# --- the bundled default -------------------------------------------------------------------------


def test_default_known_ids_and_attributes():
    tok = default_tokenizer()
    assert tok.encode("Hello world") == [15496, 995]
    assert (tok.vocab_size, tok.eos_id, tok.eos_token) == (50257, 50256, "<|endoftext|>")
    assert tok.dtype == np.dtype("<u2")
    assert tok.name == "gpt2 (bundled)"
    assert tok.fingerprint == GPT2_FINGERPRINT


def test_default_is_cached_and_shared_by_load_tokenizer():
    assert default_tokenizer() is default_tokenizer()
    assert load_tokenizer() is default_tokenizer()
    assert load_tokenizer("gpt2") is default_tokenizer()
    assert load_tokenizer(default_tokenizer()) is default_tokenizer()


def test_equals_transformers_gpt2_reference_on_real_text(real_text):
    import transformers

    reference = transformers.GPT2Tokenizer(vocab=str(VOCAB), merges=str(MERGES))
    # The same 64 KB pieces through both (transformers is slow on one 3 MB string).
    pieces = [real_text[i : i + 65536] for i in range(0, len(real_text), 65536)]
    want = reference(pieces, add_special_tokens=False)["input_ids"]
    assert default_tokenizer().encode_batch(pieces) == want


def test_import_does_not_pull_transformers_or_tiktoken():
    code = ("import sys, mmtok.tokenize.tokenizer; "
            "print(sorted(m for m in ('transformers', 'tiktoken') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_decode_round_trips_lists_and_numpy(real_text):
    tok = default_tokenizer()
    text = real_text[:20_000]
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.decode(np.asarray(ids, dtype=tok.dtype)) == text


# --- user text is data ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["auto", "tokenizers"])
def test_literal_special_token_in_text_is_text(engine):
    tok = load_tokenizer(engine=engine)
    text = "a<|endoftext|>b"
    assert tok.eos_id not in tok.encode(text)
    assert tok.eos_id not in tok.encode_batch([text, text])[1]
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("engine", ["auto", "tokenizers"])
def test_allow_special_parses_special_tokens(engine):
    tok = load_tokenizer(allow_special=True, engine=engine)
    assert tok.encode("a<|endoftext|>b") == [64, 50256, 65]
    assert tok.encode_batch(["x", "a<|endoftext|>b"]) == [[87], [64, 50256, 65]]


def test_post_processor_adds_nothing():
    spec = gpt2_spec()
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [50256], "tokens": ["<|endoftext|>"]}},
    }
    spec["truncation"] = {"direction": "Right", "max_length": 3, "strategy": "LongestFirst", "stride": 0}
    for engine in ("auto", "tokenizers"):
        tok = from_spec(spec, engine=engine)
        assert tok.encode("Hello world, again") == default_tokenizer().encode("Hello world, again")
        assert tok.fingerprint == GPT2_FINGERPRINT


# --- loading routes and errors -------------------------------------------------------------------


def test_every_route_gives_the_same_tokenizer(tmp_path):
    import transformers
    from tokenizers import Tokenizer as Backend

    (tmp_path / "tokenizer.json").write_text(default_tokenizer().to_json(), encoding="utf-8")
    bpe_folder = tmp_path / "bpe"
    bpe_folder.mkdir()
    (bpe_folder / "vocab.json").write_bytes(VOCAB.read_bytes())
    (bpe_folder / "merges.txt").write_bytes(MERGES.read_bytes())
    user_backend = Backend.from_file(str(tmp_path / "tokenizer.json"))
    hf = transformers.GPT2Tokenizer(vocab=str(VOCAB), merges=str(MERGES))
    ref = {"engine": "tokenizers"}  # the fast path is tested in test_fastpath.py; this keeps the test quick
    routes = {
        "vocab+merges": load_tokenizer(vocab_file=VOCAB, merges_file=MERGES),
        "tokenizer_file": load_tokenizer(tokenizer_file=tmp_path / "tokenizer.json", **ref),
        "json path": load_tokenizer(str(tmp_path / "tokenizer.json"), **ref),
        "folder with tokenizer.json": load_tokenizer(tmp_path, **ref),
        "folder with vocab+merges": load_tokenizer(bpe_folder, **ref),
        "tokenizers object": load_tokenizer(user_backend, **ref),
        "transformers object": load_tokenizer(hf, **ref),
    }
    want = default_tokenizer().encode(SAMPLE)
    for route, tok in routes.items():
        assert tok.fingerprint == GPT2_FINGERPRINT, route
        assert (tok.encode(SAMPLE), tok.eos_id, tok.vocab_size) == (want, 50256, 50257), route
    # mmtok works on a copy: the caller's object still parses special tokens as before.
    assert user_backend.encode("<|endoftext|>").ids == [50256]


def test_transformers_object_gives_its_eos():
    import transformers

    hf = transformers.GPT2Tokenizer(vocab=str(VOCAB), merges=str(MERGES), eos_token="<|im_end|>")
    tok = load_tokenizer(hf)
    assert tok.eos_token == "<|im_end|>"
    assert tok.eos_id == hf.convert_tokens_to_ids("<|im_end|>") == 50257
    assert tok.vocab_size == 50258


def test_model_folder_config_gives_eos(tmp_path):
    spec = gpt2_spec()
    spec["added_tokens"].append({"id": 50257, "content": "</s>", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": True})
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "</s>"}}), encoding="utf-8")
    assert load_tokenizer(tmp_path, engine="tokenizers").eos_id == 50257
    assert load_tokenizer(tmp_path, eos_token="<|endoftext|>", engine="tokenizers").eos_id == 50256


def test_eos_fallback_order_and_errors(metaspace_tokenizer):
    assert metaspace_tokenizer.eos_token == "</s>"
    with pytest.raises(TokenizerError, match="eos_token '<nope>' is not in the vocabulary"):
        load_tokenizer(eos_token="<nope>")
    spec = json.loads(metaspace_tokenizer.to_json())
    spec["added_tokens"] = [token for token in spec["added_tokens"] if token["content"] != "</s>"]
    del spec["model"]["vocab"]["</s>"]
    with pytest.raises(TokenizerError, match="pass eos_token="):
        from_spec(spec)
    assert from_spec(spec, eos_token="<unk>").eos_id == 0


def test_bad_inputs_say_what_is_wrong(tmp_path):
    with pytest.raises(TokenizerError, match="no-such-model.*neither 'gpt2' nor an existing"):
        load_tokenizer("no-such-model")
    with pytest.raises(TokenizerError, match="has no tokenizer.json and no vocab.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(TokenizerError, match="merges_file None is not a file"):
        load_tokenizer(vocab_file=VOCAB)
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match="broken.json is not a readable tokenizer.json"):
        load_tokenizer(tmp_path / "broken.json")
    with pytest.raises(TokenizerError, match="cannot use a int as a tokenizer"):
        load_tokenizer(42)
    with pytest.raises(TokenizerError, match="pass only one tokenizer source"):
        load_tokenizer("gpt2", vocab_file=VOCAB, merges_file=MERGES)
    with pytest.raises(TokenizerError, match="engine='fast' is unknown"):
        load_tokenizer(engine="fast")
    with pytest.raises(TokenizerError, match="cannot be loaded"):
        tokenizer_from_json("[]")


def test_transformers_empty_tokenizer_trap_is_refused():
    import transformers

    empty = transformers.GPT2TokenizerFast(vocab_file=str(VOCAB), merges_file=str(MERGES))
    with pytest.raises(TokenizerError, match="empty vocabulary"):
        load_tokenizer(empty)


def test_options_on_an_existing_tokenizer_rebuild_it():
    tok = load_tokenizer(default_tokenizer(), engine="tokenizers")
    assert tok is not default_tokenizer() and tok.engine == "tokenizers"
    assert tok.fingerprint == GPT2_FINGERPRINT


def test_pickle_round_trip():
    tok = pickle.loads(pickle.dumps(default_tokenizer()))
    assert (tok.name, tok.fingerprint, tok.engine) == ("gpt2 (bundled)", GPT2_FINGERPRINT, default_tokenizer().engine)
    assert tok.eos_id == 50256
    assert tok.encode(SAMPLE) == default_tokenizer().encode(SAMPLE)


# --- fingerprint ---------------------------------------------------------------------------------


def test_fingerprint_ignores_what_does_not_change_ids():
    spec = gpt2_spec()
    spec.update(decoder=None, post_processor={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                                                 "use_regex": True},
                padding={"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None,
                         "pad_id": 0, "pad_type_id": 0, "pad_token": "!"})
    # How older tokenizers versions wrote the same tokenizer: merges as strings, fewer options.
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]
    for option in ("byte_fallback", "ignore_merges", "fuse_unk"):
        del spec["model"][option]
    del spec["pre_tokenizer"]["use_regex"]
    spec["model"]["continuing_subword_prefix"] = ""
    assert from_spec(spec).fingerprint == GPT2_FINGERPRINT


@pytest.mark.parametrize("change", ["merge", "vocab id", "added flag", "pre_tokenizer", "normalizer"])
def test_fingerprint_changes_with_anything_that_changes_ids(change):
    spec = gpt2_spec()
    if change == "merge":
        merges = spec["model"]["merges"]  # one merge moved one place: a different priority
        merges[1000], merges[1001] = merges[1001], merges[1000]
    elif change == "vocab id":
        vocab = spec["model"]["vocab"]
        vocab["Hello"], vocab["world"] = vocab["world"], vocab["Hello"]
    elif change == "added flag":
        spec["added_tokens"][0]["lstrip"] = True
    elif change == "pre_tokenizer":
        spec["pre_tokenizer"]["add_prefix_space"] = True
    else:
        spec["normalizer"] = {"type": "Lowercase"}
    assert fingerprint_of(spec) != GPT2_FINGERPRINT


def test_fingerprint_is_stable_across_processes():
    code = "from mmtok.tokenize.tokenizer import load_tokenizer; print(load_tokenizer(engine='tokenizers').fingerprint)"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _ in range(2)]
    assert [run.stdout.strip() for run in runs] == [GPT2_FINGERPRINT] * 2


# --- chunk-cut rules -----------------------------------------------------------------------------


def is_cut(data: bytes, i: int, rule: str) -> bool:
    """The byte rules the bulk reader cuts by (see DESIGN.md, "Tokenization")."""
    def printable(j: int) -> bool:
        return 0 <= j < len(data) and 0x21 <= data[j] <= 0x7E

    def letter(j: int) -> bool:
        return 0 <= j < len(data) and data[j : j + 1].isalpha()  # bytes.isalpha is ASCII-only

    if rule == "newline":
        return i >= 2 and printable(i) and data[i - 1] == 0x0A and printable(i - 2)
    return 1 <= i < len(data) and data[i] == 0x20 and letter(i - 1) and letter(i + 1)


def test_gpt2_gets_both_rules_and_the_naive_newline_rule_is_wrong():
    tok = default_tokenizer()
    assert tok.cut_rules == {"newline", "space"}
    # "Cut after any newline followed by non-space" breaks when a whitespace run ends the chunk:
    # whole, "\n\n" before "B" splits as "\n", "\n"; at the end of a chunk it is one token.
    for left in ("a\n\n", "x \n\n"):
        assert tok.encode(left + "B") != tok.encode(left) + tok.encode("B")


def test_byte_level_add_prefix_space_loses_the_newline_rule():
    spec = gpt2_spec()
    spec["pre_tokenizer"]["add_prefix_space"] = True
    tok = from_spec(spec)
    assert "newline" not in tok.cut_rules
    assert tok.encode("a\nB") != tok.encode("a\n") + tok.encode("B")  # the probe saw a real failure


def test_sentencepiece_like_tokenizer_gets_fewer_rules(metaspace_tokenizer):
    assert "newline" not in metaspace_tokenizer.cut_rules


@pytest.mark.parametrize("normalizer", [
    {"type": "Strip", "strip_left": True, "strip_right": True},
    {"type": "Replace", "pattern": {"String": "a\nb"}, "content": "X"},
    {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Prepend", "prepend": "▁"}]},
])
def test_normalizers_that_act_across_a_cut_get_no_rules(normalizer):
    spec = gpt2_spec()
    spec["normalizer"] = normalizer
    assert from_spec(spec, engine="tokenizers").cut_rules == frozenset()


def test_char_local_normalizer_keeps_rules():
    spec = gpt2_spec()
    spec["normalizer"] = {"type": "Lowercase"}
    assert from_spec(spec, engine="tokenizers").cut_rules == {"newline", "space"}


def test_added_tokens_that_can_span_a_cut_remove_rules():
    spec = gpt2_spec()
    spec["added_tokens"].append({"id": 50257, "content": "x y", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": False})
    assert from_spec(spec, engine="tokenizers").cut_rules == {"newline"}
    spec["added_tokens"][-1].update(content="<tab>", lstrip=True)
    assert from_spec(spec, engine="tokenizers").cut_rules == frozenset()


ALPHABET = st.sampled_from(
    list("abcXYZ019'.,!?-()\"_") + [" ", " ", "  ", "\n", "\n", "\r", "\r\n", "\t", "'s", "'LL", "\u00a0",
                                     "\u3000", "é", "日本", "🙂", "\u0301", "<|endoftext|>", "2024"])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, min_size=1, max_size=40).map("".join))
def test_gpt2_cuts_never_change_tokens(text):
    tok = default_tokenizer()
    data = text.encode("utf-8")
    whole = tok.encode(text)
    for rule in tok.cut_rules:
        for i in range(len(data)):
            if is_cut(data, i, rule):
                at = len(data[:i].decode("utf-8"))
                assert tok.encode(text[:at]) + tok.encode(text[at:]) == whole, (rule, text[:at], text[at:])
