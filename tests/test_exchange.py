"""Export a store to a cache file and import it back: byte-identical stores, in gzip and zstd, bulk and by line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from storetools import snapshot

import mmtok
from mmtok.base.errors import (
    CacheError,
    CorruptStoreError,
    StoreExistsError,
    TokenizerMismatchError,
)
from mmtok.cache.container import detect_cache_format
from mmtok.cache.export import export_store
from mmtok.cache.importer import import_cache, read_cache_header
from mmtok.cli import main
from mmtok.store.verify import verify_store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bulk_store(tmp_path_factory, real_text_file):
    """The multi-MB real corpus as one bulk document, cut into many tiny shards."""
    path = tmp_path_factory.mktemp("exchange") / "bulk.mmtok"
    store = mmtok.build(real_text_file, path, shard_tokens=60_000, chunk_bytes=100_000)
    assert len(store.shards) > 10
    return store


@pytest.fixture(scope="module")
def lines_store(tmp_path_factory, docs_prose):
    """The prose's paragraphs as JSON lines: one document each, many shards."""
    folder = tmp_path_factory.mktemp("exchange-lines")
    jsonl = folder / "paragraphs.jsonl"
    with open(jsonl, "w", encoding="utf-8") as f:
        for paragraph in docs_prose.split("\n\n"):
            if paragraph.strip():
                f.write(json.dumps({"text": paragraph}) + "\n")
    store = mmtok.build(jsonl, folder / "lines.mmtok", shard_tokens=15_000, chunk_bytes=20_000)
    assert store.num_documents > 1000 and len(store.shards) > 5 and store.line_by_line
    return store


@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("which", ["bulk", "lines"])
def test_round_trip_is_byte_identical(tmp_path, request, which, codec):
    store = request.getfixturevalue(f"{which}_store")
    view = {"block_size": 256, "stride": 128, "line_by_line": False} if which == "bulk" else \
        {"block_size": 64, "stride": None, "line_by_line": True}
    cache = tmp_path / "cache.bin"  # a neutral name: the codec is in the bytes
    summary = export_store(store, cache, codec=codec, view=view, chunk_bytes=1 << 16)
    assert summary["tokens"] == store.num_tokens and summary["documents"] == store.num_documents
    assert summary["bytes"] == os.path.getsize(cache) and summary["ratio"] > (1.5 if codec != "none" else 0.99)
    assert detect_cache_format(cache) == ("mmtok", codec)
    header = read_cache_header(cache)
    assert header["num_tokens"] == store.num_tokens and header["view"] == view
    assert header["tokenizer"]["included"] is True

    out = tmp_path / "imported.mmtok"
    back, settings = import_cache(cache, out)
    assert settings == view
    assert snapshot(out) == snapshot(store.path)  # shards, document ends, manifest, tokenizer.json
    assert verify_store(str(out))["tokens"] == store.num_tokens
    assert np.array_equal(back.tokens[:], store.tokens[:])
    assert sorted(os.listdir(tmp_path)) == ["cache.bin", "imported.mmtok"]  # no temporary left


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_export_is_deterministic(tmp_path, bulk_store, codec):
    first, second = tmp_path / "a", tmp_path / "b"
    export_store(bulk_store, first, codec=codec, view={"block_size": 1024})
    export_store(bulk_store.path, second, codec=codec, view={"block_size": 1024})
    assert first.read_bytes() == second.read_bytes()
    if codec == "gzip":
        raw = first.read_bytes()
        assert raw[3] == 0 and raw[4:8] == b"\0\0\0\0"  # no file name, mtime 0
    else:
        # zstd's multi-threaded bytes do not depend on the thread count
        third = tmp_path / "c"
        export_store(bulk_store, third, codec="zstd", threads=1, view={"block_size": 1024})
        assert third.read_bytes() == first.read_bytes()


def test_no_tokenizer_and_the_tokenizer_argument(tmp_path, lines_store):
    cache = tmp_path / "slim.tar.gz"
    with_tok = tmp_path / "full.tar.gz"
    export_store(lines_store, cache, include_tokenizer=False)
    export_store(lines_store, with_tok)
    assert os.path.getsize(cache) < os.path.getsize(with_tok) - 300_000  # GPT-2's tokenizer.json is ~1.3 MB
    assert read_cache_header(cache)["tokenizer"]["included"] is False
    # GPT-2 is the default: found again without being told, same bytes.
    result = import_cache(cache, tmp_path / "a")
    assert snapshot(tmp_path / "a") == snapshot(lines_store.path)
    assert result.summary["tokenizer_included"] is False and result.summary["tokenizer_replaced"] is False
    import_cache(cache, tmp_path / "b", tokenizer="gpt2")
    assert snapshot(tmp_path / "b") == snapshot(lines_store.path)
    # Another tokenizer than the store's is refused, and leaves nothing.
    other = _small_tokenizer(tmp_path)
    for source in (cache, with_tok):
        with pytest.raises(TokenizerMismatchError, match="was made with tokenizer"):
            import_cache(source, tmp_path / "c", tokenizer=other)
        assert not (tmp_path / "c").exists()


def _small_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {chr(c): i for i, c in enumerate(range(32, 127))}
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="?"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    path = tmp_path / "small.json"
    tok.save(str(path))
    return str(path)


def test_a_store_without_gpt2_needs_its_tokenizer(tmp_path):
    tok = _small_tokenizer(tmp_path)
    store = mmtok.build(None, tmp_path / "small.mmtok", texts=["hello there", "general kenobi"], tokenizer=tok,
                        eos_token="<eos>")
    cache = tmp_path / "small.zst"
    export_store(store, cache, include_tokenizer=False)
    with pytest.raises(CacheError, match="exported without its tokenizer"):
        import_cache(cache, tmp_path / "x")
    assert sorted(os.listdir(tmp_path)) == ["small.json", "small.mmtok", "small.zst"]
    import_cache(cache, tmp_path / "y", tokenizer=tok)
    assert snapshot(tmp_path / "y") == snapshot(store.path)


def test_destination_rules(tmp_path, lines_store):
    cache = tmp_path / "c.tar.gz"
    export_store(lines_store, cache)
    with pytest.raises(StoreExistsError):
        import_cache(cache, lines_store.path)
    (tmp_path / "empty").mkdir()
    import_cache(cache, tmp_path / "empty")  # an empty folder may receive the store
    assert snapshot(tmp_path / "empty") == snapshot(lines_store.path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreExistsError):
        import_cache(cache, tmp_path / "file")
    import_cache(cache, tmp_path / "new" / "deeper")  # parents are created
    assert (tmp_path / "new" / "deeper" / "manifest.json").exists()


def test_export_refuses_a_damaged_store_and_leaves_no_file(tmp_path, lines_store):
    import shutil

    copy = tmp_path / "copy.mmtok"
    shutil.copytree(lines_store.path, copy)
    victim = copy / "shards" / "000002.tokens.npy"
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0x10
    victim.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="000002.tokens.npy: checksum mismatch"):
        export_store(copy, tmp_path / "out.tar.gz")
    assert sorted(os.listdir(tmp_path)) == ["copy.mmtok"]


def test_cli_export_import_and_summaries(tmp_path, lines_store, monkeypatch):
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["export", lines_store.path])
    assert result.exit_code == 0, result.output
    assert os.path.exists("dataset_cache.tar.gz")
    assert detect_cache_format("dataset_cache.tar.gz") == ("mmtok", "gzip")
    line = result.output.strip()
    assert "\n" not in line and f"{lines_store.num_tokens:,} tokens" in line and "ratio" in line and "MB/s" in line

    result = runner.invoke(main, ["export", lines_store.path, "-o", "c.zst", "--level", "5", "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert detect_cache_format("c.zst") == ("mmtok", "zstd")
    result = runner.invoke(main, ["export", lines_store.path, "-o", "forced.tar.gz", "--codec", "zstd"])
    assert result.exit_code == 0 and detect_cache_format("forced.tar.gz") == ("mmtok", "zstd")

    result = runner.invoke(main, ["import", "c.zst", "-o", "back.mmtok"])
    assert result.exit_code == 0, result.output
    assert f"{lines_store.num_documents:,} documents" in result.output and "MB/s" in result.output
    assert snapshot("back.mmtok") == snapshot(lines_store.path)

    again = runner.invoke(main, ["import", "c.zst", "-o", "back.mmtok"])
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    missing = runner.invoke(main, ["import", "nope.tar.gz", "-o", "x"])
    assert missing.exit_code == 1 and "no such cache file" in missing.output
    not_store = runner.invoke(main, ["export", "nowhere.mmtok"])
    assert not_store.exit_code == 1 and "no such store" in not_store.output


@pytest.mark.parametrize("args, message", [
    (["--level", "0"], "level"),
    (["--level", "12"], "gzip level"),
    (["--codec", "zstd", "--level", "25"], "zstd level"),
    (["--threads", "2"], "threads apply to zstd"),
    (["--format", "aitextgen", "--codec", "zstd"], "gzip"),
    (["--format", "aitextgen-msgpack", "--no-tokenizer"], "--no-tokenizer"),
    (["--codec", "bzip2"], "bzip2"),
    (["--format", "tar"], "tar"),
])
def test_cli_usage_errors_exit_2(tmp_path, lines_store, args, message):
    result = CliRunner().invoke(main, ["export", lines_store.path, "-o", str(tmp_path / "x.gz"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not os.listdir(tmp_path)


def test_progress_is_called_and_drawn_on_a_terminal(tmp_path, bulk_store):
    import io

    from mmtok.cli.cache_cmd import TransferProgress

    calls = []
    export_store(bulk_store, tmp_path / "c.zst", progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] and all(a <= b for (a, _), (b, _) in zip(calls, calls[1:]))
    screen = io.StringIO()
    bar = TransferProgress("import", stream=screen, enabled=True)
    bar._drawn = -1.0
    import_cache(tmp_path / "c.zst", tmp_path / "s", progress=bar)
    bar.close()
    assert "import" in screen.getvalue() and "%" in screen.getvalue()


def test_export_and_import_run_in_constant_memory(tmp_path):
    """A 120 MB store exports and imports with peak RSS growing by far less than its size (in subprocesses)."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs to measure peak memory")
    tokens = np.random.default_rng(1).integers(0, 50257, 60_000_000, dtype=np.uint16)
    raw = tmp_path / "tokens.npy"
    np.save(raw, tokens)
    del tokens
    script = textwrap.dedent("""
        import sys
        from mmtok.cache.export import export_store
        from mmtok.cache.importer import import_cache
        from mmtok.tokenize.tokenizer import default_tokenizer

        def status(key):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

        default_tokenizer()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS counter (VmHWM) to the current RSS
        base = status("VmRSS")
        step, a, b = sys.argv[1:4]
        if step == "legacy":
            import_cache(a, b, shard_tokens=25_000_000)
        elif step == "export":
            export_store(a, b, codec="zstd", level=1)
        else:
            import_cache(a, b)
        print(status("VmHWM") - base)
    """)
    env = dict(os.environ, PYTHONPATH=REPO)
    growth = {}
    for step, a, b in (("legacy", raw, tmp_path / "big.mmtok"), ("export", tmp_path / "big.mmtok", tmp_path / "big.zst"),
                       ("import", tmp_path / "big.zst", tmp_path / "again.mmtok")):
        done = subprocess.run([sys.executable, "-c", script, step, str(a), str(b)], capture_output=True, text=True,
                              env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        growth[step] = float(done.stdout.strip().splitlines()[-1])
    assert snapshot(tmp_path / "again.mmtok") == snapshot(tmp_path / "big.mmtok")
    assert mmtok.open(tmp_path / "big.mmtok").num_tokens == 60_000_001  # eos appended
    for step, megabytes in growth.items():
        assert megabytes < 60, (step, growth)  # the store is 120 MB; a whole-file read would need more
