"""Corrupt and hostile stores: opening refuses with a message naming the problem, verify reports every
problem with its shard, the CLI gives one line and exit 1, nothing outside the store is read, nothing hangs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import mmtok
from mmtok.base.constants import STORE_MAX_MANIFEST_BYTES
from mmtok.cli import main
from mmtok.store.verify import check_store, verify_store


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, docs_prose):
    folder = tmp_path_factory.mktemp("hostile")
    texts = [p for p in docs_prose.split("\n\n") if p.strip()][:300]
    out = folder / "good.mmtok"
    mmtok.build(texts=texts, path=out, shard_tokens=3000, chunk_bytes=4000, workers=1)
    return out


@pytest.fixture()
def store(tmp_path, pristine):
    copy = tmp_path / "store.mmtok"
    shutil.copytree(pristine, copy)
    return copy


def _manifest(store):
    return json.loads((store / "manifest.json").read_text())


def _write_manifest(store, manifest):
    (store / "manifest.json").write_text(json.dumps(manifest))


def _edit(store, change):
    manifest = _manifest(store)
    change(manifest)
    _write_manifest(store, manifest)


def _rehash(store, manifest, index):
    shard = manifest["shards"][index]
    for kind in ("tokens", "docs"):
        data = (store / "shards" / f"{shard['name']}.{kind}.npy").read_bytes()
        shard[f"{kind}_sha256"] = hashlib.sha256(data).hexdigest()


def _rewrite_docs(store, index, change):
    manifest = _manifest(store)
    path = store / "shards" / f"{manifest['shards'][index]['name']}.docs.npy"
    docs = np.load(path)
    change(docs)
    np.save(path, docs)
    _rehash(store, manifest, index)
    _write_manifest(store, manifest)


def _read_everything(path):
    opened = mmtok.open(path)
    for i in range(opened.num_documents):
        opened.documents[i]
    opened.tokenizer
    return opened


def _outside(tmp_path):
    victim = tmp_path / "outside.npy"
    np.save(victim, np.arange(10, dtype="<u2"))
    return victim


def _symlink_shard_out(store, tmp_path):
    name = _manifest(store)["shards"][1]["name"]
    target = store / "shards" / f"{name}.tokens.npy"
    moved = tmp_path / "moved.tokens.npy"
    shutil.move(target, moved)
    os.symlink(moved, target)  # the same bytes, but outside the store: refused all the same


def _symlink_shards_folder_out(store, tmp_path):
    shutil.move(store / "shards", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", store / "shards")


def _truncate_shard(store, tmp_path):
    path = store / "shards" / f"{_manifest(store)['shards'][0]['name']}.tokens.npy"
    data = path.read_bytes()
    path.write_bytes(data[:-6])


def _header_disagrees(store, tmp_path):
    def change(m):
        m["shards"][0]["tokens"] += 1
        m["shards"][1]["tokens"] -= 1
    _edit(store, change)


def _ids_beyond_vocab(store, tmp_path):
    manifest = _manifest(store)
    path = store / "shards" / f"{manifest['shards'][0]['name']}.tokens.npy"
    tokens = np.load(path)
    tokens[3] = 60000
    np.save(path, tokens)
    _rehash(store, manifest, 0)
    _write_manifest(store, manifest)


def _fifo(relative):
    def make(store, tmp_path):
        target = store / relative(store)
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        os.mkfifo(target)
    return make


def _folder(relative):
    def make(store, tmp_path):
        target = store / relative(store)
        target.unlink()
        target.mkdir()
    return make


def _link(relative, to):
    def make(store, tmp_path):
        target = store / relative(store)
        target.unlink()
        os.symlink(to, target)
    return make


def _first_tokens(store):
    return f"shards/{_manifest(store)['shards'][0]['name']}.tokens.npy"


def _nested(store, tmp_path):
    (store / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)


def _huge_manifest(store, tmp_path):
    with open(store / "manifest.json", "r+b") as f:  # sparse: costs no disk
        f.truncate(STORE_MAX_MANIFEST_BYTES + 1)


# (case, how to damage the store, what the message must say, whether opening alone already refuses)
CASES = [
    ("dotdot shard name", lambda s, t: _edit(s, lambda m: m["shards"][0].update(name="../../outside")), "ASCII digits", True),
    ("absolute shard name", lambda s, t: _edit(s, lambda m: m["shards"][0].update(name="/etc/passwd")), "ASCII digits", True),
    ("5000-digit shard name", lambda s, t: _edit(s, lambda m: m["shards"][0].update(name="1" * 5000)), "ASCII digits", True),
    ("shard listed twice", lambda s, t: _edit(s, lambda m: m.update(
        shards=m["shards"] + m["shards"][-1:], num_tokens=m["num_tokens"] + m["shards"][-1]["tokens"],
        num_documents=m["num_documents"] + m["shards"][-1]["documents"])), "listed twice", True),
    ("shard symlinked out", _symlink_shard_out, "outside the store", False),
    ("shards folder symlinked out", _symlink_shards_folder_out, "outside the store", False),
    ("shard shorter than its header", _truncate_shard, "bytes, expected", False),
    ("header disagrees with manifest", _header_disagrees, "manifest says", False),
    ("offsets decrease", lambda s, t: _rewrite_docs(s, 1, lambda d: d.__setitem__(slice(0, 2), d[1::-1].copy())),
     "not strictly increasing", False),
    ("offsets past the end", lambda s, t: _rewrite_docs(s, 1, lambda d: d.__setitem__(-1, 10**15)), "outside the shard", False),
    ("offsets absurd", lambda s, t: _rewrite_docs(s, 0, lambda d: d.__setitem__(0, -(2**62))), "outside the shard", False),
    ("offset not after eos", lambda s, t: _rewrite_docs(s, 0, lambda d: d.__setitem__(0, d[0] - 1)), "eos", False),
    ("ids beyond the vocabulary", _ids_beyond_vocab, "not below the vocabulary", None),
    ("newer version", lambda s, t: _edit(s, lambda m: m.update(version=99)), "newer than this mmtok", True),
    ("version true", lambda s, t: _edit(s, lambda m: m.update(version=True)), "version must be a positive integer", True),
    ("version 1.5", lambda s, t: _edit(s, lambda m: m.update(version=1.5)), "version must be a positive integer", True),
    ("num_tokens 10^30", lambda s, t: _edit(s, lambda m: m.update(num_tokens=10**30)), "num_tokens must be", True),
    ("shard tokens 10^30", lambda s, t: _edit(s, lambda m: m["shards"][0].update(tokens=10**30)), "tokens must be", True),
    ("missing shard", lambda s, t: (s / _first_tokens(s)).unlink(), "missing", False),
    ("manifest is a folder", _folder(lambda s: "manifest.json"), "is a folder", True),
    ("manifest is a FIFO", _fifo(lambda s: "manifest.json"), "FIFO", True),
    ("manifest links to /dev/zero", _link(lambda s: "manifest.json", "/dev/zero"), "outside the store", True),
    ("manifest nested 100k deep", _nested, "deeper than 128 levels", True),
    ("manifest over the size cap", _huge_manifest, "bytes, more than", True),
    ("shard is a folder", _folder(_first_tokens), "is a folder", False),
    ("shard is a FIFO", _fifo(_first_tokens), "FIFO", False),
    ("shard links to /dev/zero", _link(_first_tokens, "/dev/zero"), "outside the store", False),
    ("tokenizer.json missing", lambda s, t: (s / "tokenizer.json").unlink(), "tokenizer.json", False),
    ("tokenizer.json links to /dev/zero", _link(lambda s: "tokenizer.json", "/dev/zero"), "outside the store", False),
    ("tokenizer.json is a FIFO", _fifo(lambda s: "tokenizer.json"), "FIFO", False),
]


@pytest.mark.parametrize("case, damage, message, at_open", CASES, ids=[c[0] for c in CASES])
def test_hostile_store_is_refused_by_name(tmp_path, store, case, damage, message, at_open):
    damage(store, tmp_path)
    if at_open is True:
        with pytest.raises(mmtok.StoreError, match=message):
            mmtok.open(store)
    elif at_open is False:
        with pytest.raises(mmtok.StoreError, match=message):
            _read_everything(store)
    # verify names every problem (with the shard when a shard is at fault) and never crashes
    with pytest.raises(mmtok.StoreError, match=message) as caught:
        verify_store(store)
    if "shard" in case and "name" not in case and "twice" not in case and "folder symlinked" not in case:
        assert any(where in str(caught.value) for where in ("shard ", "shards/", "shards["))
    # the command line: one line on stderr, exit 1, no traceback, for every reading command
    runner = CliRunner()
    for args in (["verify", str(store)], ["info", str(store)], ["show", str(store), "--doc", "1"]):
        result = runner.invoke(main, args)
        if args[0] == "verify" or at_open:
            assert result.exit_code == 1, (args, result.output)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
            (args, repr(result.exception))
        assert "Traceback" not in result.output


def test_verify_reports_every_problem_with_its_shard(store, tmp_path):
    manifest = _manifest(store)
    names = [s["name"] for s in manifest["shards"]]
    for name in names[:3]:
        path = store / "shards" / f"{name}.tokens.npy"
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    report = check_store(store)
    assert len(report["problems"]) == 3
    for name, problem in zip(names, report["problems"]):
        assert f"shard {name}" in problem and "checksum" in problem
    result = CliRunner().invoke(main, ["verify", str(store)])
    assert result.exit_code == 1
    for name in names[:3]:
        assert f"shard {name}" in result.output
    assert "3 problems" in result.output


def test_a_symlink_inside_the_store_is_followed(store):
    # Readers refuse only what leads outside the folder: a link from one store file to another inside is read.
    name = _manifest(store)["shards"][0]["name"]
    target = store / "shards" / f"{name}.docs.npy"
    os.rename(target, store / "shards" / "real-docs.bin")
    os.symlink("real-docs.bin", target)
    _read_everything(store)
    verify_store(store)


def test_dev_zero_manifest_costs_bounded_memory(store):
    # Run with a 1.5 GB address-space limit: reading /dev/zero whole would hit it; refusing does not.
    (store / "manifest.json").unlink()
    os.symlink("/dev/zero", store / "manifest.json")
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))\n"
        "import mmtok\n"
        "try:\n    mmtok.open(sys.argv[1])\n"
        "except mmtok.StoreError as exc:\n    print('refused:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:") and "outside the store" in done.stdout


@pytest.mark.parametrize("case", ["shard links to /dev/zero", "shard is a FIFO", "tokenizer.json links to /dev/zero",
                                  "tokenizer.json is a FIFO", "shards folder symlinked out"])
def test_export_reads_nothing_outside_the_store(tmp_path, store, case):
    damage = next(c[1] for c in CASES if c[0] == case)
    damage(store, tmp_path)
    out = tmp_path / "out" / "c.gz"
    result = CliRunner().invoke(main, ["export", str(store), "-o", str(out), "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "outside the store" in result.output or "not a regular file" in result.output
    assert not out.parent.exists() or os.listdir(out.parent) == []
