"""Hostile or damaged files in other stacks' formats: one clear line, exit 1, nothing written, bounded memory."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from mmtok.base.errors import FormatError
from mmtok.cli import main
from mmtok.formats import import_format

EOS = 50256


def megatron(folder, seqs, *, code=8, dtype="<u2", magic=b"MMIDIDX\x00\x00", version=1, lengths=None,
             pointers=None, doc_index=None, cut_idx=0, bin_extra=b""):
    prefix = str(folder / "data")
    data = b"".join(np.array(s, dtype=dtype).tobytes() for s in seqs) + bin_extra
    with open(prefix + ".bin", "wb") as f:
        f.write(data)
    size = np.dtype(dtype).itemsize
    lengths = np.array([len(s) for s in seqs] if lengths is None else lengths, dtype="<i4")
    if pointers is None:
        pointers = np.concatenate([[0], np.cumsum([len(s) for s in seqs])[:-1]]) * size
    pointers = np.array(pointers, dtype="<i8")
    doc_index = np.arange(len(seqs) + 1, dtype="<i8") if doc_index is None else np.array(doc_index, dtype="<i8")
    raw = struct.pack("<9sQBQQ", magic, version, code, len(lengths), len(doc_index))
    raw += lengths.tobytes() + pointers.tobytes() + doc_index.tobytes()
    with open(prefix + ".idx", "wb") as f:
        f.write(raw[: len(raw) - cut_idx])
    return prefix


def raw_file(path, data: bytes):
    path.write_bytes(data)
    return path


def llmc(folder, body, *, magic=20240520, version=1, count=None, extra=b""):
    os.makedirs(folder, exist_ok=True)
    header = np.zeros(256, dtype="<i4")
    header[:3] = (magic, version, len(body) if count is None else count)
    path = folder / "train_000000.bin"
    path.write_bytes(header.tobytes() + np.array(body, dtype="<u2").tobytes() + extra)
    return folder


def olmo(folder, body, rows):
    os.makedirs(folder, exist_ok=True)
    np.array(body, dtype="<u2").tofile(folder / "part-00000.npy")
    with gzip.open(folder / "part-00000.csv.gz", "wt") as f:
        f.write("".join(f"{a},{b},0,x,0\n" for a, b in rows))
    return folder


def parquet(folder, table):
    pq = pytest.importorskip("pyarrow.parquet")
    path = folder / "rows.parquet"
    pq.write_table(table, path)
    return path


CASES = {
    "megatron-truncated-idx": ("megatron", lambda d: megatron(d, [[1, 2, EOS]], cut_idx=5), "truncated or damaged"),
    "megatron-short-header": ("megatron", lambda d: megatron(d, [[1, EOS]], cut_idx=60), "shorter than the"),
    "megatron-wrong-magic": ("megatron", lambda d: megatron(d, [[1, EOS]], magic=b"NOTANIDX\x00"), "wrong magic"),
    "megatron-version": ("megatron", lambda d: megatron(d, [[1, EOS]], version=2), "version 2"),
    "megatron-float-dtype": ("megatron", lambda d: megatron(d, [[1, EOS]], code=6, dtype="<f8"),
                             "not an integer token type"),
    "megatron-pointer-past-end": ("megatron", lambda d: megatron(d, [[1, 2, EOS]], pointers=[4000]), "past the end"),
    "megatron-length-overflow": ("megatron", lambda d: megatron(d, [[1, 2, EOS]], lengths=[-5]), "negative"),
    "megatron-huge-length": ("megatron", lambda d: megatron(d, [[1, 2, EOS]], lengths=[2**31 - 1]), "past the end"),
    "megatron-bin-not-whole": ("megatron", lambda d: megatron(d, [[1, 2, EOS]], bin_extra=b"\x01"),
                               "not a whole number"),
    "megatron-doc-index": ("megatron", lambda d: megatron(d, [[1, EOS], [2, EOS]], doc_index=[0, 2, 1]),
                           "document indices"),
    "megatron-id-beyond-vocab": ("megatron", lambda d: megatron(d, [[1, 60000, EOS]]), "vocabulary size"),
    "megatron-negative-id": ("megatron", lambda d: megatron(d, [[1, -3, EOS]], code=4, dtype="<i4"), "negative"),
    "nanogpt-odd-size": ("nanogpt", lambda d: raw_file(d / "train.bin", b"\x01\x00\x02"), "not a whole number"),
    "nanogpt-id-beyond-vocab": ("nanogpt", lambda d: np.array([1, 65000], "<u2").tofile(d / "t.bin") or d / "t.bin",
                                "vocabulary size"),
    "llmc-wrong-magic": ("llmc", lambda d: llmc(d / "sh", [EOS, 1], magic=1234), "wrong magic"),
    "llmc-count-mismatch": ("llmc", lambda d: llmc(d / "sh", [EOS, 1, 2], count=10**9), "truncated or damaged"),
    "llmc-version": ("llmc", lambda d: llmc(d / "sh", [EOS, 1], version=7), "version 7"),
    "olmo-rows-overlap": ("olmo", lambda d: olmo(d / "o", [1, EOS, 2, EOS], [(0, 2), (1, 4)]), ":2: document"),
    "olmo-rows-past-end": ("olmo", lambda d: olmo(d / "o", [1, EOS], [(0, 2), (2, 9)]), ":2: document"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_import_fails_cleanly(case, tmp_path):
    fmt, make, message = CASES[case]
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    source = make(src_dir)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(FormatError, match=message):
        import_format(source, tmp_path / "out.mmtok", fmt)
    assert sorted(os.listdir(tmp_path)) == before  # no store, no temporary folder
    result = CliRunner().invoke(main, ["import", str(source), "--format", fmt, "-o", str(tmp_path / "out.mmtok")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message.split(":")[-1].strip() in lines[0], lines
    assert "Traceback" not in result.output
    assert sorted(os.listdir(tmp_path)) == before


def test_hostile_parquet_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    cases = [
        (pa.table({"input_ids": [[1, 2], None]}), "null rows"),
        (pa.table({"text": ["a", "b"]}), "no column 'input_ids'"),
        (pa.table({"input_ids": pa.array([[1.5]], type=pa.list_(pa.float32()))}), "not a list of integer"),
        (pa.table({"input_ids": pa.array([[1, 70000]], type=pa.list_(pa.int64()))}), "vocabulary size"),
    ]
    for table, message in cases:
        path = parquet(tmp_path, table)
        with pytest.raises(FormatError, match=message):
            import_format(path, tmp_path / "out.mmtok", "parquet")
        assert sorted(os.listdir(tmp_path)) == ["rows.parquet"]
    (tmp_path / "rows.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(FormatError, match="not a readable Parquet file"):
        import_format(tmp_path / "rows.parquet", tmp_path / "out.mmtok", "parquet")


def test_declared_sizes_are_checked_before_anything_is_allocated(tmp_path):
    """An .idx that declares 2**40 sequences in a few bytes is refused from its size alone."""
    prefix = tmp_path / "huge"
    (tmp_path / "huge.bin").write_bytes(b"")
    (tmp_path / "huge.idx").write_bytes(struct.pack("<9sQBQQ", b"MMIDIDX\x00\x00", 1, 8, 2**40, 2**40 + 1))
    with pytest.raises(FormatError, match="declares 1,099,511,627,776 sequences"):
        import_format(prefix, tmp_path / "out.mmtok", "megatron")
