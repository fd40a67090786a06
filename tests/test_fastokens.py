"""The fastokens engine: used only where it gives the reference ids, and the build's bytes never depend on it.

fastokens is young (pre-1.0), so these run in the default suite on every change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mmtok.base.errors import TokenizerError
from mmtok.cli import main
from mmtok.store.build import build
from mmtok.tokenize import fastokens_engine, fastpath
from mmtok.tokenize.tokenizer import default_tokenizer, load_tokenizer
from storetools import snapshot
from zoo import ZOO

pytest.importorskip("fastokens")  # a default dependency wherever its wheels exist (see pyproject.toml)


def reference_batch(tok, texts: list[str]) -> list[list[int]]:
    return [encoding.ids for encoding in tok.backend.encode_batch_fast(texts, add_special_tokens=False)]


@pytest.fixture(scope="module")
def pieces(real_text) -> list[str]:
    return [real_text[i : i + 65536] for i in range(0, len(real_text), 65536)]


@pytest.fixture(scope="module")
def zoo(docs_prose) -> dict:
    return {name: make(docs_prose) for name, make in ZOO.items()}


def test_default_gpt2_uses_fastokens_with_identical_ids(real_text, pieces):
    tok = default_tokenizer()
    assert tok.engine == "fastokens" and tok.fast_path_refusal is None and tok.engine_refusals == ()
    assert tok.encode(real_text) == tok.backend.encode(real_text, add_special_tokens=False).ids
    assert tok.encode_batch(pieces) == reference_batch(tok, pieces)
    ids, offsets = tok.encode_flat(pieces)
    assert ids.tolist() == [i for batch in reference_batch(tok, pieces) for i in batch]
    assert offsets[-1] == ids.shape[0] and offsets.shape == (len(pieces) + 1,)


@pytest.mark.parametrize("allow_special", [False, True])
def test_special_tokens_in_text_follow_allow_special(allow_special, pieces):
    tok = load_tokenizer(allow_special=allow_special)
    assert tok.engine == "fastokens"
    texts = [piece[:3000] + "<|endoftext|>" + piece[3000:4000] + " <|endoftext|><|endoftext|>\n" for piece in pieces[:6]]
    assert tok.encode_batch(texts) == reference_batch(tok, texts)
    assert tok.encode("a<|endoftext|>b") == ([64, 50256, 65] if allow_special else [64, 27, 91, 437, 1659, 5239, 91, 29, 65])


def test_the_probe_catches_special_token_handling_that_differs():
    # An encoder that parses <|endoftext|> while the reference treats it as text must be refused.
    tok = default_tokenizer()
    wrong = fastokens_engine.FastokensEncoder(tok._fast.native, allow_special=True)
    with pytest.raises(fastpath.FastPathRefused, match="fastokens and tokenizers disagree"):
        fastpath.verify(wrong, tok.backend, fastpath.probe_texts())


def test_zoo_tokenizers_are_identical_or_refused_with_a_reason(zoo, pieces):
    engines = {}
    for name, backend in zoo.items():
        tok = load_tokenizer(backend)
        engines[name] = tok.engine
        if tok.engine == "tokenizers":
            assert "fastokens:" in tok.fast_path_refusal and "tiktoken:" in tok.fast_path_refusal
        assert tok.encode_batch(pieces[:8]) == reference_batch(tok, pieces[:8])
    # A Llama-3-style regex is within fastokens' reach; what it cannot load is refused, not approximated.
    assert engines["llama3-style"] == "fastokens"


def test_forcing_an_engine_that_cannot_be_proven_explains_why(zoo):
    with pytest.raises(TokenizerError, match="engine='fastokens' cannot encode .*Use engine='auto'"):
        load_tokenizer(zoo["wordpiece"], engine="fastokens")
    assert load_tokenizer(engine="fastokens").engine == "fastokens"


def test_without_fastokens_auto_falls_back_to_tiktoken(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastokens", None)  # what an install without it looks like
    tok = load_tokenizer(engine="auto", allow_special=True)
    assert tok.engine == "tiktoken"
    assert "fastokens: fastokens is not installed" in tok.engine_refusals[0]
    with pytest.raises(TokenizerError, match="fastokens is not installed"):
        load_tokenizer(engine="fastokens", allow_special=True)


_THREADS_SCRIPT = """
import json, os, sys
from mmtok.tokenize.tokenizer import load_tokenizer
tiktoken_only = load_tokenizer(engine="tiktoken")   # the reference probe's own threads start here
tiktoken_only.encode_batch(["warm up " * 1000] * 8)
before = len(os.listdir("/proc/self/task"))
tok = load_tokenizer(engine="fastokens")
for _ in range(3):
    tok.encode_flat(["some text " * 20000] * 8)
print(json.dumps({"before": before, "after": len(os.listdir("/proc/self/task")),
                  "setting": os.environ.get("FASTOKENS_BPE_THREADS")}))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
@pytest.mark.parametrize("user_setting", [None, "2"])
def test_fastokens_starts_no_threads_and_keeps_a_users_setting(user_setting):
    env = {k: v for k, v in os.environ.items() if k != "FASTOKENS_BPE_THREADS"}
    if user_setting is not None:
        env["FASTOKENS_BPE_THREADS"] = user_setting
    out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], env=env, capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found["setting"] == (user_setting or "1")
    if user_setting is None:
        assert found["after"] <= found["before"], found  # (a finished helper thread may have left)


def _shards(path) -> dict:
    return {name: digest for name, digest in snapshot(path).items() if name.startswith("shards")}


@pytest.fixture(scope="module")
def engines() -> dict:
    return {engine: load_tokenizer(engine=engine) for engine in ("fastokens", "tiktoken", "tokenizers")}


@pytest.mark.parametrize("kind", ["bulk", "csv", "jsonl"])
def test_build_bytes_are_identical_for_every_engine_and_worker_count(tmp_path, real_text, kind, engines):
    text = real_text[:600_000]
    if kind == "bulk":
        source = tmp_path / "in.txt"
        source.write_text(text, encoding="utf-8")
    elif kind == "csv":
        import csv

        source = tmp_path / "in.csv"
        with open(source, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text"])
            writer.writerows([line + " <|endoftext|>"] for line in text.split("\n"))
    else:
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps({"text": line}) + "\n" for line in text.split("\n\n")), encoding="utf-8")
    stores = {}
    for engine, tok in engines.items():
        for workers in (1, 2):
            out = tmp_path / f"{engine}-{workers}.mmtok"
            build(source, out, tokenizer=tok, workers=workers, chunk_bytes=40_000, shard_tokens=50_000)
            stores[engine, workers] = _shards(out)
            assert json.loads((out / "manifest.json").read_text())["build"]["engine"] == engine
    reference = stores["tokenizers", 1]
    assert len(reference) >= 4  # several shards, so cuts across chunks and shards are compared too
    assert all(found == reference for found in stores.values())


def test_zoo_builds_are_identical_to_the_reference_engine(tmp_path, zoo, real_text):
    source = tmp_path / "in.txt"
    source.write_text(real_text[:300_000], encoding="utf-8")
    for name, backend in zoo.items():
        tok = load_tokenizer(backend)
        fast = build(source, tmp_path / f"{name}.mmtok", tokenizer=tok, chunk_bytes=30_000, workers=2)
        ref = build(source, tmp_path / f"{name}-ref.mmtok", tokenizer=load_tokenizer(backend, engine="tokenizers"),
                    chunk_bytes=30_000, workers=1)
        assert _shards(tmp_path / f"{name}.mmtok") == _shards(tmp_path / f"{name}-ref.mmtok"), name
        whole = tok.backend.encode(real_text[:300_000], add_special_tokens=False).ids + [tok.eos_id]
        assert np.concatenate([fast.shard_tokens(i) for i in range(len(fast.shards))]).tolist() == whole
        assert ref.num_tokens == fast.num_tokens


def test_cli_names_the_engine(tmp_path, docs_prose):
    text = tmp_path / "docs.txt"
    text.write_text(docs_prose, encoding="utf-8")
    runner = CliRunner()
    built = runner.invoke(main, ["build", str(text), "-o", str(tmp_path / "s.mmtok"), "--engine", "fastokens"])
    assert built.exit_code == 0, built.output
    assert "engine fastokens" in built.output
    info = runner.invoke(main, ["info", str(tmp_path / "s.mmtok")])
    assert "engine      fastokens" in info.output
    assert json.loads(runner.invoke(main, ["info", str(tmp_path / "s.mmtok"), "--json"]).output)["engine"] == "fastokens"
    bad = runner.invoke(main, ["build", str(text), "-o", str(tmp_path / "t.mmtok"), "--engine", "fast"])
    assert bad.exit_code == 2 and "'fast' is not one of" in bad.output
