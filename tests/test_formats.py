"""Exports to other stacks' formats read back by readers written from the published layouts, and round trips.

Each format: mmtok's export is read by tests/formatreaders.py (no code shared
with mmtok.formats) and must give exactly the store's documents (or stream, or
windows); importing the export gives back a store with the same token stream
and document ends, which `verify` accepts. Hypothesis varies document lengths
(empty and one-token documents included) over uint16 and uint32 stores.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import formatreaders as readers
from storetools import mixed_store
from mmtok.formats import export_format, import_format
from mmtok.formats.storewrite import StoreWriter
from mmtok.store import Store, verify_store
from mmtok.tokenize.tokenizer import load_tokenizer

ROUND_TRIP = ["megatron", "hf", "parquet", "nanogpt", "llmc", "olmo"]


def needs_arrow(fmt):
    if fmt in ("hf", "parquet"):
        pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, docs_prose):
    """Real text over several shards: one bulk document that spans shards, then one document per line."""
    store = mixed_store(tmp_path_factory.mktemp("formats"), docs_prose[:40_000], docs_prose[40_000:90_000], "real.mmtok")
    assert len(store.shards) > 3 and store.num_documents > 50
    return store


def docs_of(store) -> list[np.ndarray]:
    return [store.documents[i] for i in range(store.num_documents)]


def same_store(a, b) -> bool:
    return (a.dtype == b.dtype and np.array_equal(a.tokens[:], b.tokens[:])
            and np.array_equal(a.documents.lengths(), b.documents.lengths()))


_BIG = None


def big_tokenizer():
    """A word-level tokenizer with 70,000 ids, so its stores hold uint32."""
    global _BIG
    if _BIG is None:
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel

        vocab = {f"w{i}": i for i in range(70_000)}
        vocab["<eos>"] = 69_999
        del vocab["w69999"]
        vocab["<unk>"] = 69_998
        del vocab["w69998"]
        _BIG = load_tokenizer(Tokenizer(WordLevel(vocab, unk_token="<unk>")), eos_token="<eos>")
    return _BIG


def synthetic_store(path, docs, tok):
    """A store whose documents are ``docs`` (each gets the eos), written through the import writer, verified."""
    writer = StoreWriter(path, tok, source="synthetic", kind="test", shard_tokens=7)
    for doc in docs:
        ids = np.array(doc + [tok.eos_id], dtype=np.int64)
        writer.write(ids, [ids.shape[0]], "synthetic")
    store = writer.commit()
    verify_store(store.path)
    return store


def check_export(fmt, store, out, **options):
    """Read mmtok's export of ``store`` with the test's own reader; compare with the store."""
    docs = docs_of(store)
    stream = store.tokens[:]
    eos = store.eos_id
    if fmt == "megatron":
        seqs, doc_index = readers.megatron_sequences(str(out))
        assert [s.tolist() for s in seqs] == [d.tolist() for d in docs]
        assert doc_index.tolist() == list(range(len(docs) + 1))
    elif fmt == "nanogpt":
        assert np.array_equal(readers.nanogpt_tokens(out), stream)
    elif fmt == "llmc":
        tokens, counts = readers.llmc_tokens(out)
        expected = np.concatenate([[eos], stream[:-1]]) if stream.shape[0] else stream
        assert np.array_equal(tokens, expected)
        limit = options.get("shard_tokens", 10**8)
        assert all(c == limit for c in counts[:-1]) and 0 < len(counts)
        assert 0 < counts[-1] <= limit or not stream.shape[0]
    elif fmt == "olmo":
        got = readers.olmo_documents(out, store.dtype)
        assert [g.tolist() for g in got] == [d.tolist() for d in docs]
    elif fmt == "litdata":
        items, chunks, config = readers.litdata_items(out)
        assert config["item_loader"] == "TokensLoader"
        assert np.array_equal(np.concatenate(items) if items else stream[:0], stream)
        limit = options.get("shard_tokens", 1 << 25)
        if all(d.shape[0] <= limit for d in docs):
            # an item per document, a document split only where a chunk fills
            joined, k = [], 0
            for d in docs:
                parts = []
                while sum(p.shape[0] for p in parts) < d.shape[0]:
                    parts.append(items[k])
                    k += 1
                joined.append(np.concatenate(parts))
            assert [j.tolist() for j in joined] == [d.tolist() for d in docs]
        for block in (1, 3, 8):
            expected = []
            at = 0
            for chunk in chunks:
                expected += [stream[at + i * block : at + (i + 1) * block] for i in range(chunk["dim"] // block)]
                at += chunk["dim"]
            assert [w.tolist() for w in readers.litdata_windows(out, block)] == [e.tolist() for e in expected]
    elif fmt in ("hf", "parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        if fmt == "parquet":
            table = pq.read_table(out)
        else:
            names = sorted(n for n in os.listdir(out) if n.endswith(".arrow"))
            table = pa.concat_tables([pa.ipc.open_stream(pa.memory_map(str(out / n))).read_all() for n in names])
        rows = table.column("input_ids").to_pylist()
        block = options.get("block_size")
        if block:
            expected = [stream[i : i + block].tolist() for i in range(0, stream.shape[0], block)]
        else:
            expected = [d.tolist() for d in docs]
        assert rows == expected
        assert str(table.schema.field("input_ids").type.value_type) == store.dtype.name


def export_and_import(fmt, store, tmp_path, **options):
    out = tmp_path / f"out-{fmt}"
    summary = export_format(store, out, fmt, **options)
    assert summary["tokens"] == store.num_tokens
    check_export(fmt, store, out, **options)
    if fmt == "litdata":
        return None
    tok = store.tokenizer
    result = import_format(out, tmp_path / f"back-{fmt}.mmtok", fmt, tokenizer=tok)
    back = result["store"]
    assert same_store(store, back), fmt
    assert result["eos_appended"] == 0
    verify_store(back.path)
    return back


@pytest.mark.parametrize("fmt", ROUND_TRIP + ["litdata"])
def test_real_store_exports_read_back_and_round_trip(fmt, real_store, tmp_path):
    needs_arrow(fmt)
    export_and_import(fmt, real_store, tmp_path)


@pytest.mark.parametrize("fmt, options", [("llmc", {"shard_tokens": 1000}), ("olmo", {"shard_tokens": 1000}),
                                          ("litdata", {"shard_tokens": 1000}), ("hf", {"shard_tokens": 5000}),
                                          ("hf", {"block_size": 64}), ("parquet", {"block_size": 100})])
def test_sharded_and_windowed_exports(fmt, options, real_store, tmp_path):
    needs_arrow(fmt)
    export_and_import(fmt, real_store, tmp_path, **options)
    if fmt in ("llmc", "olmo", "litdata", "hf") and "shard_tokens" in options:
        assert len(os.listdir(tmp_path / f"out-{fmt}")) > 3


def test_megatron_link_mode_zero_copy(real_store, tmp_path):
    out = tmp_path / "linked"
    summary = export_format(real_store, out, "megatron", link=True)
    assert summary["linked"] == "hard link"
    stream = real_store.tokens[:]
    spanning = 0
    joined = []
    for i, shard in enumerate(real_store.shards):
        prefix = str(out / shard["name"])
        tokens_path = os.path.join(real_store.path, "shards", shard["name"] + ".tokens.npy")
        assert os.path.samefile(prefix + ".bin", tokens_path)  # the shard's own file, not a copy
        seqs, doc_index = readers.megatron_sequences(prefix)
        lo, hi = int(real_store.token_starts[i]), int(real_store.token_starts[i + 1])
        assert np.array_equal(np.concatenate(seqs), stream[lo:hi])
        assert doc_index.tolist() == list(range(len(seqs) + 1))
        spanning += int(seqs[-1][-1] != real_store.eos_id)
        joined += seqs
    assert spanning >= 1  # the bulk document crosses shards: its pieces are sequences of two prefixes
    back = import_format(out, tmp_path / "back.mmtok", "megatron", tokenizer=real_store.tokenizer)["store"]
    assert same_store(real_store, back)


documents_strategy = st.lists(st.lists(st.integers(0, 200), max_size=12), max_size=25)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=documents_strategy, wide=st.booleans(), fmt=st.sampled_from(ROUND_TRIP + ["litdata"]))
def test_random_documents_round_trip(tmp_path_factory, docs, wide, fmt):
    if fmt in ("hf", "parquet"):
        pytest.importorskip("pyarrow")
    tok = big_tokenizer() if wide else load_tokenizer(None)
    if wide:
        docs = [[t * 331 + 1 for t in d] for d in docs]  # ids above 65,535
    tmp = tmp_path_factory.mktemp("hyp")
    store = synthetic_store(tmp / "s.mmtok", docs, tok)
    if wide and fmt in ("nanogpt", "llmc"):
        with pytest.raises(ValueError, match="uint16"):
            export_format(store, tmp / "out", fmt)
        return
    options = {"shard_tokens": 5} if fmt in ("llmc", "olmo", "litdata") else {}
    export_and_import(fmt, store, tmp, **options)


def test_megatron_import_appends_missing_eos(tmp_path):
    """Data built without --append-eod: documents get the eos, and the summary counts them."""
    import struct

    tok = load_tokenizer(None)
    seqs = [[10, 11, 12], [13], [14, 15, tok.eos_id], []]
    prefix = tmp_path / "noeod"
    data = np.concatenate([np.array(s, dtype=np.uint16) for s in seqs])
    data.tofile(str(prefix) + ".bin")
    lengths = np.array([len(s) for s in seqs], dtype="<i4")
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1])]).astype("<i8") * 2
    with open(str(prefix) + ".idx", "wb") as f:
        f.write(struct.pack("<9sQBQQ", b"MMIDIDX\x00\x00", 1, 8, 4, 5))
        f.write(lengths.tobytes() + pointers.tobytes() + np.arange(5, dtype="<i8").tobytes())
    result = import_format(prefix, tmp_path / "s.mmtok", "megatron")
    store = result["store"]
    assert result["eos_appended"] == 3
    assert [d.tolist() for d in docs_of(store)] == [[10, 11, 12, tok.eos_id], [13, tok.eos_id],
                                                     [14, 15, tok.eos_id], [tok.eos_id]]


def test_nanogpt_and_llmc_tails_get_eos(tmp_path):
    tok = load_tokenizer(None)
    eos = tok.eos_id
    np.array([1, 2, eos, 3, 4], dtype=np.uint16).tofile(tmp_path / "train.bin")
    result = import_format(tmp_path / "train.bin", tmp_path / "n.mmtok", "nanogpt")
    assert [d.tolist() for d in docs_of(result["store"])] == [[1, 2, eos], [3, 4, eos]]
    assert result["eos_appended"] == 1
    os.mkdir(tmp_path / "llmc")
    body = np.array([eos, 5, 6, eos, 7], dtype="<u2")
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, body.shape[0])
    (tmp_path / "llmc" / "val_000000.bin").write_bytes(header.tobytes() + body.tobytes())
    store = import_format(tmp_path / "llmc", tmp_path / "l.mmtok", "llmc")["store"]
    assert [d.tolist() for d in docs_of(store)] == [[5, 6, eos], [7, eos]]


def test_existing_output_is_refused_unless_force(real_store, tmp_path):
    out = tmp_path / "train.bin"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="--force"):
        export_format(real_store, out, "nanogpt")
    assert out.read_bytes() == b"keep me"
    export_format(real_store, out, "nanogpt", force=True)
    assert np.array_equal(np.fromfile(out, dtype=np.uint16), real_store.tokens[:])
    folder = tmp_path / "olmo"
    folder.mkdir()
    (folder / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError):
        export_format(real_store, folder, "olmo")
    export_format(real_store, folder, "olmo", force=True)
    assert not (folder / "mine.txt").exists() and (folder / "part-00000.npy").exists()
    store_path = tmp_path / "s.mmtok"
    import_format(out, store_path, "nanogpt")
    with pytest.raises(FileExistsError, match="--force"):
        import_format(out, store_path, "nanogpt")
    import_format(out, store_path, "nanogpt", force=True)
    assert sorted(os.listdir(tmp_path)) == ["olmo", "s.mmtok", "train.bin"]  # no temporary leftovers


def test_options_that_do_not_apply_are_refused(real_store, tmp_path):
    with pytest.raises(ValueError, match="--link does not apply"):
        export_format(real_store, tmp_path / "x", "nanogpt", link=True)
    with pytest.raises(ValueError, match="--block-size does not apply"):
        export_format(real_store, tmp_path / "x", "olmo", block_size=4)
    with pytest.raises(ValueError, match="--dtype does not apply"):
        import_format(tmp_path, tmp_path / "y", "megatron", dtype="uint32")
    assert os.listdir(tmp_path) == []


def test_cli_round_trip_with_summary_lines(real_store, tmp_path):
    from click.testing import CliRunner

    from mmtok.cli import main

    runner = CliRunner()
    out = tmp_path / "olmo"
    result = runner.invoke(main, ["export", real_store.path, "--format", "olmo", "-o", str(out),
                                  "--shard-tokens", "4000"])
    assert result.exit_code == 0, result.output
    assert f"{real_store.num_tokens:,} tokens" in result.output and "as olmo" in result.output
    back = tmp_path / "back.mmtok"
    result = runner.invoke(main, ["import", str(out), "--format", "olmo", "-o", str(back)])
    assert result.exit_code == 0, result.output
    assert f"{real_store.num_documents:,} documents" in result.output and "eos appended" not in result.output
    assert runner.invoke(main, ["verify", str(back)]).exit_code == 0
    assert same_store(real_store, Store(back))
    result = runner.invoke(main, ["export", real_store.path, "--format", "nanogpt", "-o", str(tmp_path / "t.bin"),
                                  "--block-size", "8"])
    assert result.exit_code == 2 and "--block-size does not apply" in result.output


def test_export_of_a_damaged_store_fails_and_leaves_nothing(real_store, tmp_path):
    import shutil

    from mmtok.base.errors import CorruptStoreError

    copy = tmp_path / "damaged.mmtok"
    shutil.copytree(real_store.path, copy)
    shard = copy / "shards" / (real_store.shards[1]["name"] + ".tokens.npy")
    data = bytearray(shard.read_bytes())
    data[-3] ^= 1
    shard.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    for fmt, target in (("megatron", out / "m"), ("olmo", out / "o"), ("llmc", out / "l"), ("nanogpt", out / "n")):
        with pytest.raises(CorruptStoreError, match="checksum mismatch"):
            export_format(Store(copy), target, fmt)
        assert os.listdir(out) == []


def test_parquet_text_column_is_tokenized_like_any_input(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    texts = ["Hello world", "déjà vu <|endoftext|> stays text", "x"]
    pq.write_table(pa.table({"text": texts, "n": [1, 2, 3]}), tmp_path / "t.parquet")
    result = import_format(tmp_path / "t.parquet", tmp_path / "t.mmtok", "parquet", text_column="text")
    store = result["store"]
    tok = store.tokenizer
    assert [d.tolist() for d in docs_of(store)] == [tok.encode(t) + [tok.eos_id] for t in texts]
    assert docs_of(store)[0].tolist() == [15496, 995, tok.eos_id]
    with pytest.raises(ValueError, match="not text"):
        import_format(tmp_path / "t.parquet", tmp_path / "u.mmtok", "parquet", text_column="n")
    assert sorted(os.listdir(tmp_path)) == ["t.mmtok", "t.parquet"]


@pytest.mark.parametrize("fmt", ROUND_TRIP + ["litdata"])
def test_empty_store_round_trips(fmt, tmp_path):
    needs_arrow(fmt)
    store = synthetic_store(tmp_path / "empty.mmtok", [], load_tokenizer(None))
    assert store.num_tokens == 0
    back = export_and_import(fmt, store, tmp_path)
    assert back is None or back.num_documents == 0
    if fmt == "nanogpt":
        (tmp_path / "free").mkdir()  # an empty folder counts as free for the imported store
        assert import_format(tmp_path / "out-nanogpt", tmp_path / "free", fmt)["store"].num_tokens == 0
