"""A golden store, read with numpy, json, gzip and msgpack alone; and today's code still writes its bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from storetools import snapshot

import mmtok
from mmtok.base.constants import FORMAT_VERSION

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")

# Runs in a fresh interpreter that never imports mmtok: the format must be readable without it.
READER = r'''
import gzip, json, os, sys
import msgpack, numpy as np

golden = sys.argv[1]
store = os.path.join(golden, "store.mmtok")
manifest = json.load(open(os.path.join(store, "manifest.json"), encoding="utf-8"))
expected = json.load(open(os.path.join(golden, "expected.json"), encoding="utf-8"))
if manifest["format"] != "mmtok-store" or manifest["version"] != 1:
    sys.exit("unexpected format " + repr((manifest["format"], manifest["version"])))
tokens, ends = [], []
for shard in manifest["shards"]:
    t = np.load(os.path.join(store, "shards", shard["name"] + ".tokens.npy"), mmap_mode="r", allow_pickle=False)
    d = np.load(os.path.join(store, "shards", shard["name"] + ".docs.npy"), allow_pickle=False)
    if t.dtype != np.dtype(manifest["dtype"]) or d.dtype != np.dtype("<i8"):
        sys.exit("dtype mismatch in shard " + shard["name"])
    if (t.shape[0], d.shape[0]) != (shard["tokens"], shard["documents"]):
        sys.exit("count mismatch in shard " + shard["name"])
    tokens.append(np.asarray(t))
    ends.append(d)
stream, ends = np.concatenate(tokens), np.concatenate(ends)
starts = np.concatenate([[0], ends[:-1]])
documents = [stream[a:b].tolist() for a, b in zip(starts, ends)]
if documents != expected["documents"] or int(ends[-1]) != manifest["num_tokens"]:
    sys.exit("store documents differ from expected.json")

# The cache file: gzip around a MessagePack sequence (FORMAT.md, "The cache file").
with gzip.open(os.path.join(golden, "store.cache.gz"), "rb") as f:
    records = list(msgpack.Unpacker(f, raw=False, max_buffer_size=1 << 24))
magic, header, trailer = records[0], records[1], records[-1]
if magic != "mmtok-cache" or header["format"] != "mmtok-cache" or trailer["section"] != "end":
    sys.exit("bad cache framing")
if header["view"]["block_size"] != 16 or header["num_tokens"] != manifest["num_tokens"]:
    sys.exit("cache header does not describe the store")
cached_tokens, i = [], 2
while i < len(records) - 1:
    section = records[i]
    i += 1
    payload = b""
    while i < len(records) - 1 and isinstance(records[i], bytes):
        payload += records[i]
        i += 1
    if section["section"] == "file" and section["name"] == "manifest.json":
        if json.loads(payload) != manifest:
            sys.exit("cached manifest differs")
    if section["section"] == "shard":
        split = section["tokens"] * np.dtype(header["dtype"]).itemsize
        cached_tokens.append(np.frombuffer(payload[:split], dtype=header["dtype"]))
if np.concatenate(cached_tokens).tolist() != stream.tolist():
    sys.exit("cached tokens differ from the store's")
print(json.dumps({"header_keys": sorted(header), "records": len(records), "documents": len(documents),
                  "mmtok_imported": "mmtok" in sys.modules, "stream": stream.tolist()}))
'''


def test_golden_store_reads_without_mmtok():
    done = subprocess.run([sys.executable, "-c", READER, GOLDEN], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert report["mmtok_imported"] is False
    assert report["documents"] == 5
    with open(os.path.join(GOLDEN, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    assert report["stream"] == [t for doc in expected["documents"] for t in doc]


def test_golden_store_opens_and_verifies():
    store = mmtok.open(os.path.join(GOLDEN, "store.mmtok"))
    with open(os.path.join(GOLDEN, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    assert [store.documents[i].tolist() for i in range(store.num_documents)] == expected["documents"]
    from mmtok.store.verify import verify_store

    assert verify_store(store.path)["documents"] == 5


def test_todays_code_writes_the_golden_bytes(tmp_path):
    # The same inputs and settings must give byte-identical shards and tokenizer.json: the format did not drift.
    inputs = []
    for name in ("input.txt", "input.jsonl"):
        copy = tmp_path / name
        copy.write_bytes(open(os.path.join(GOLDEN, name), "rb").read())
        inputs.append(copy)
    store = mmtok.build(inputs, tmp_path / "store.mmtok", tokenizer=os.path.join(GOLDEN, "tokenizer.json"),
                        workers=2, shard_tokens=60, chunk_bytes=64)
    fresh, golden = snapshot(store.path), snapshot(os.path.join(GOLDEN, "store.mmtok"))
    assert {k: v for k, v in fresh.items() if k != "manifest.json"} == \
        {k: v for k, v in golden.items() if k != "manifest.json"}
    with open(os.path.join(GOLDEN, "store.mmtok", "manifest.json"), encoding="utf-8") as f:
        golden_manifest = json.load(f)
    for key in ("format", "dtype", "eos_id", "num_tokens", "num_documents", "shards"):
        assert store.manifest[key] == golden_manifest[key], key
    # The golden store stays at version 1 (it is how old stores look); today's code writes the current version.
    assert (golden_manifest["version"], store.manifest["version"]) == (1, FORMAT_VERSION)
    # The tokenizer's name is the path it was loaded from, which depends on the checkout.
    without_name = [{k: v for k, v in m["tokenizer"].items() if k != "name"} for m in (store.manifest, golden_manifest)]
    assert without_name[0] == without_name[1]
    np.testing.assert_array_equal(store.tokens[:], mmtok.open(os.path.join(GOLDEN, "store.mmtok")).tokens[:])
