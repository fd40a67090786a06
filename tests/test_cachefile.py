"""The cache container itself: codecs from magic bytes, determinism, the record stream and its checks."""

from __future__ import annotations

import gzip
import io

import msgpack
import pytest
import zstandard

from mmtok.base.constants import CACHE_MAGIC, CACHE_MAX_CHUNK_BYTES
from mmtok.base.errors import CacheError
from mmtok.cache.compression import (
    CompressedWriter,
    DecompressedStream,
    check_codec,
    codec_from_name,
)
from mmtok.cache.container import CacheReader, CacheWriter, detect_cache_format


def _write(items, codec="gzip", level=1, threads=1) -> bytes:
    buffer = io.BytesIO()
    out = CompressedWriter(buffer, codec, level, threads)
    writer = CacheWriter(out)
    for item in items:
        if isinstance(item, dict):
            writer.record(item)
        else:
            writer.payload(item)
    writer.trailer({"count": len(items)})
    out.close()
    return buffer.getvalue()


def _read_all(path, codec):
    """(objects, trailer, digest, reader): the stream stays open for ``reader.expect_end()``."""
    reader = CacheReader(DecompressedStream(path, codec, str(path)))
    found = []
    while True:
        obj = reader.next()
        if isinstance(obj, dict) and obj.get("section") == "end":
            return found, obj, reader.digest(), reader
        found.append(obj)


ITEMS = [{"section": "a", "n": 1, "name": "x"}, b"\x01\x02\x03", bytes(range(256)) * 300, {"section": "b"}, b"z"]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_records_round_trip_and_the_trailer_hashes_everything_before_it(tmp_path, codec):
    path = tmp_path / "c"
    path.write_bytes(_write(ITEMS, codec))
    found, trailer, (hashed, digest), reader = _read_all(path, codec)
    assert found == ITEMS
    assert trailer["bytes"] == hashed and trailer["sha256"] == digest and trailer["count"] == len(ITEMS)
    reader.expect_end()
    # The decompressed stream is a plain msgpack sequence starting with the magic string.
    raw = gzip.decompress(path.read_bytes()) if codec == "gzip" else \
        zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read()
    assert raw.startswith(CACHE_MAGIC)
    assert list(msgpack.Unpacker(io.BytesIO(raw)))[0] == "mmtok-cache"


def test_codec_is_read_from_the_bytes_not_the_name(tmp_path):
    gz_named_zst = tmp_path / "really-gzip.zst"
    gz_named_zst.write_bytes(_write(ITEMS, "gzip"))
    zst_named_gz = tmp_path / "dataset_cache.tar.gz"
    zst_named_gz.write_bytes(_write(ITEMS, "zstd"))
    assert detect_cache_format(gz_named_zst) == ("mmtok", "gzip")
    assert detect_cache_format(zst_named_gz) == ("mmtok", "zstd")
    assert _read_all(gz_named_zst, "gzip")[0] == ITEMS
    plain = tmp_path / "plain"
    plain.write_bytes(gzip.decompress(gz_named_zst.read_bytes()))
    assert detect_cache_format(plain) == ("mmtok", "none")


def test_codec_options():
    assert codec_from_name("dataset_cache.tar.gz") == "gzip" and codec_from_name("x.ZST") == "zstd"
    assert codec_from_name("cache.bin") == "gzip"
    assert check_codec("gzip", None, None) == ("gzip", 5, 1)
    assert check_codec("zstd", 10, 2) == ("zstd", 10, 2)
    assert check_codec("none", None, None) == ("none", 0, 1) and codec_from_name("dataset_cache.npy") == "none"
    assert check_codec("zstd", None, None)[2] >= 1
    for bad in (("gzip", 0, None), ("gzip", 10, None), ("zstd", 20, None), ("zstd", 3.5, None), ("gzip", 6, 4),
                ("lz4", 1, None), ("none", 3, None)):
        with pytest.raises(ValueError):
            check_codec(*bad)


def test_writers_are_deterministic():
    assert _write(ITEMS, "gzip", 6) == _write(ITEMS, "gzip", 6)
    data = _write(ITEMS, "gzip", 9)
    assert data[4:8] == b"\0\0\0\0" and data[3] == 0  # mtime 0, no FNAME field
    big = ITEMS + [bytes(CACHE_MAX_CHUNK_BYTES)] * 3
    assert _write(big, "zstd", 3, 1) == _write(big, "zstd", 3, 2) == _write(big, "zstd", 3, 4)


def test_payload_bounds():
    writer = CacheWriter(CompressedWriter(io.BytesIO(), "gzip", 1, 1))
    for size in (0, CACHE_MAX_CHUNK_BYTES + 1):
        with pytest.raises(ValueError):
            writer.payload(bytes(size))


def test_data_after_the_trailer_is_refused(tmp_path):
    raw = gzip.decompress(_write(ITEMS))
    path = tmp_path / "c"
    path.write_bytes(gzip.compress(raw + b"\xc0"))
    found, trailer, _, reader = _read_all(path, "gzip")
    with pytest.raises(CacheError, match="unexpected data after the trailer"):
        reader.expect_end()
    # a second gzip member after the stream is data after the trailer too
    path.write_bytes(_write(ITEMS) + gzip.compress(b"\xc0"))
    *_, reader = _read_all(path, "gzip")
    with pytest.raises(CacheError, match="unexpected data after the trailer"):
        reader.expect_end()


def test_zstd_truncation_is_detected_even_in_the_frame_checksum(tmp_path):
    data = _write(ITEMS, "zstd")
    for cut in (1, 2, 4):
        path = tmp_path / "c"
        path.write_bytes(data[:-cut])
        with pytest.raises(CacheError, match="truncated"):
            _read_all(path, "zstd")[3].expect_end()


def test_concatenated_zstd_frames_are_one_stream(tmp_path):
    raw = gzip.decompress(_write(ITEMS))
    cctx = zstandard.ZstdCompressor(write_checksum=True)
    path = tmp_path / "c"
    path.write_bytes(cctx.compress(raw[:1000]) + cctx.compress(raw[1000:]))
    found, *_, reader = _read_all(path, "zstd")
    assert found == ITEMS
    reader.expect_end()


def test_wrong_record_kinds_are_named(tmp_path):
    path = tmp_path / "c"
    path.write_bytes(_write([b"payload first"]))
    with DecompressedStream(path, "gzip", "c") as stream:
        reader = CacheReader(stream)
        with pytest.raises(CacheError, match="expected the 'header' record at byte 12, found 13 bytes of payload"):
            reader.record("header")
    path.write_bytes(_write([{"section": "x"}]))
    with DecompressedStream(path, "gzip", "c") as stream:
        reader = CacheReader(stream)
        with pytest.raises(CacheError, match="cut short"):
            reader.payload(10, 1, "the test section")
