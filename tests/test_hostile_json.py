"""JSON from outside (manifests, journals, cached manifests, JSONL lines): one promise on every Python.

Nesting deeper than JSON_MAX_DEPTH is refused before parsing (Python 3.13's json parses far deeper than
3.10-3.12 do, which raise RecursionError), and a format version is an int: anything else is damage.
"""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

import mmtok
from mmtok.base.errors import CacheError, CorruptStoreError, InputError, StoreError
from mmtok.base.jsonlimits import JSON_MAX_DEPTH, json_too_deep
from mmtok.cache.importer import import_cache
from mmtok.store.manifest import read_journal


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("text, deep", [
    (nested(JSON_MAX_DEPTH), False),
    (nested(JSON_MAX_DEPTH + 1), True),
    ('{"a":' * (JSON_MAX_DEPTH + 1) + "1" + "}" * (JSON_MAX_DEPTH + 1), True),
    (json.dumps({"text": "[" * 10_000}), False),  # brackets inside a string do not nest
    (json.dumps({"t": "\\\"[[" * 500, "x": nested(3)}), False),  # nor after escaped quotes
    ("[" + ",".join(["[]"] * 10_000) + "]", False),  # many containers side by side
    (nested(100_000), True),
])
def test_depth_is_counted_outside_strings(text, deep):
    assert json_too_deep(text) is deep
    if not deep:
        json.loads(text)  # and what passes, parses, on every Python


@pytest.fixture
def store(tmp_path):
    return mmtok.build(None, tmp_path / "s.mmtok", texts=["hello world", "second document"])


def _edit_manifest(store, edit) -> str:
    path = os.path.join(store.path, "manifest.json")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(edit(text))
    return path


@pytest.mark.parametrize("depth", [JSON_MAX_DEPTH + 1, 5000, 200_000])
def test_a_deep_manifest_is_corrupt_on_every_python(store, depth):
    _edit_manifest(store, lambda t: t.replace('"inputs": [', '"inputs": [' + nested(depth) + ",", 1))
    with pytest.raises(CorruptStoreError, match=f"nests arrays/objects deeper than {JSON_MAX_DEPTH} levels"):
        mmtok.open(store.path)


@pytest.mark.parametrize("version, error, message", [
    ("true", CorruptStoreError, "version must be a positive integer, found True"),
    ("1.5", CorruptStoreError, "version must be a positive integer, found 1.5"),
    ('"1"', CorruptStoreError, "version must be a positive integer, found '1'"),
    ("0", CorruptStoreError, "version must be a positive integer, found 0"),
    ("3", StoreError, "store format version 3 is newer than this mmtok reads"),  # version 2 is today's
])
def test_a_version_is_an_int(store, version, error, message):
    from mmtok.base.constants import FORMAT_VERSION

    _edit_manifest(store, lambda t: t.replace(f'"version": {FORMAT_VERSION}', f'"version": {version}', 1))
    with pytest.raises(error, match=message):
        mmtok.open(store.path)


def test_a_deep_journal_counts_as_none(tmp_path):
    (tmp_path / "build-journal.json").write_text(nested(100_000))
    assert read_journal(str(tmp_path)) is None


@pytest.mark.parametrize("depth", [JSON_MAX_DEPTH + 1, 100_000])
def test_a_deep_jsonl_line_names_its_line(tmp_path, depth):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "deep", "meta": ' + nested(depth) + "}\n")
    with pytest.raises(InputError, match=r"in\.jsonl:2: the JSON nests arrays/objects deeper than"):
        mmtok.build(str(path), tmp_path / "s.mmtok")
    assert not (tmp_path / "s.mmtok").exists()


def test_a_jsonl_line_at_the_limit_builds(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "ok", "meta": ' + nested(JSON_MAX_DEPTH - 1) + "}\n")
    assert mmtok.build(str(path), tmp_path / "s.mmtok").num_documents == 1


def test_an_npy_cache_with_a_long_header_is_one_line(tmp_path):
    header = repr({"descr": "<u2", "fortran_order": False, "shape": (3,)}).encode()
    header += b" " * (12_000 - len(header)) + b"\n"
    data = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + np.arange(3, dtype="<u2").tobytes()
    (tmp_path / "c.npy").write_bytes(gzip.compress(data))
    with pytest.raises(CacheError) as caught:
        import_cache(tmp_path / "c.npy", tmp_path / "out")
    assert "\n" not in str(caught.value)
    assert "not a valid .npy array header (12,001 bytes long, over the 10,000 that numpy and mmtok read)" in str(
        caught.value)
