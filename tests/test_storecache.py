"""Automatic stores: where they go, reuse without tokenizing, rebuilds on change, concurrency, list and clean."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

import mmtok
from mmtok import TokenDataset, storecache
from mmtok.base.errors import InputError, StoreExistsError
from mmtok.store.verify import verify_store
from mmtok.tokenize.tokenizer import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("MMTOK_CACHE_DIR", str(folder))
    return folder


@pytest.fixture()
def encodes(monkeypatch) -> list:
    """Records every call of any encode method of the tokenizer (whichever the build uses)."""
    calls = []
    for name in [name for name in vars(Tokenizer) if name.startswith("encode")]:
        original = getattr(Tokenizer, name)

        def counting(self, *args, _original=original, **kwargs):
            calls.append(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Tokenizer, name, counting)
    return calls


@pytest.fixture()
def text_file(tmp_path, docs_prose):
    path = tmp_path / "same.txt"
    path.write_text(docs_prose[:200_000], encoding="utf-8")
    return path


def _files(folder) -> dict:
    """(mtime_ns, inode) of every file under ``folder``."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            stat = os.stat(os.path.join(root, name))
            out[os.path.join(root, name)] = (stat.st_mtime_ns, stat.st_ino)
    return out


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MMTOK_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert storecache.cache_dir() == str(tmp_path / "home" / ".cache" / "mmtok")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert storecache.cache_dir() == str(tmp_path / "home" / ".cache" / "mmtok")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert storecache.cache_dir() == str(tmp_path / "xdg" / "mmtok")
    monkeypatch.setenv("MMTOK_CACHE_DIR", str(tmp_path / "mine"))
    assert storecache.cache_dir() == str(tmp_path / "mine")


def test_second_open_reuses_the_store_without_tokenizing(cache, text_file, encodes):
    first = TokenDataset(text_file, block_size=64)
    assert encodes, "the first call tokenizes"
    assert os.path.dirname(first.store.path) == str(cache / "stores")
    assert os.path.basename(first.store.path).startswith("same.txt-")
    before = _files(first.store.path)
    encodes.clear()
    second = TokenDataset(text_file, block_size=128)
    assert second.store.path == first.store.path
    assert not encodes
    assert _files(first.store.path) == before
    np.testing.assert_array_equal(second[0], first[0:2].reshape(-1))


def test_reuse_in_a_new_process_does_not_even_load_the_tokenizer(cache, text_file):
    path = TokenDataset(text_file, block_size=64).store.path
    script = (f"import sys, mmtok; ds = mmtok.TokenDataset({str(text_file)!r}, block_size=64); ds[0]; "
              "print(ds.store.path); print(sorted({'tokenizers', 'tiktoken', 'transformers', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "MMTOK_CACHE_DIR": str(cache)}).stdout.split("\n")
    assert out[:2] == [path, "[]"]


def test_a_changed_file_or_tokenizer_gets_a_new_store(cache, text_file, encodes, docs_prose):
    old = TokenDataset(text_file, block_size=64)
    same_tokenizer = TokenDataset(text_file, block_size=64, tokenizer_file=os.path.join(old.store.path, "tokenizer.json"))
    assert same_tokenizer.store.path == old.store.path  # same fingerprint, same store
    encodes.clear()
    stat = os.stat(text_file)
    os.utime(text_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = TokenDataset(text_file, block_size=64)
    assert touched.store.path != old.store.path and encodes
    text_file.write_text(docs_prose[:100_000], encoding="utf-8")
    edited = TokenDataset(text_file, block_size=64)
    assert edited.store.num_tokens < old.store.num_tokens
    other = TokenDataset(text_file, block_size=64, eos_token="!")
    assert other.store.path != edited.store.path and other.store.eos_id == 0
    assert len({old.store.path, touched.store.path, edited.store.path, other.store.path}) == 4
    stale = {entry.path for entry in storecache.list_stores() if entry.stale}
    assert stale == {old.store.path, touched.store.path}
    assert sorted(storecache.clean_stores(stale_only=True)) == sorted(stale)
    assert {entry.path for entry in storecache.list_stores()} == {edited.store.path, other.store.path}
    assert TokenDataset(text_file, block_size=64).store.path == edited.store.path


def test_texts_are_keyed_by_content(cache, encodes):
    texts = ["Lorem", "Ipsum", "Dolor sit amet"]
    first = TokenDataset(texts=texts)
    encodes.clear()
    assert TokenDataset(texts=tuple(texts)).store.path == first.store.path and not encodes
    for other in (["Lorem", "Ipsum", "Dolor sit amet", ""], ["LoremIpsum", "", "Dolor sit amet"]):
        assert TokenDataset(texts=other).store.path != first.store.path
    for bad in ((t for t in texts), "Lorem", {"a", "b"}, ["ok", 3]):
        with pytest.raises(InputError, match="texts"):
            TokenDataset(texts=bad)


def test_an_explicit_store_path(cache, tmp_path, text_file, encodes):
    target = tmp_path / "mine.mmtok"
    ds = TokenDataset(text_file, store=target, block_size=64)
    assert ds.store.path == str(target) and not os.path.exists(cache / "stores")
    encodes.clear()
    assert TokenDataset(text_file, store=target).store.path == str(target) and not encodes
    texts_store = tmp_path / "texts.mmtok"
    TokenDataset(texts=["a", "b"], store=texts_store)
    with pytest.raises(StoreExistsError, match="TokenDataset.open"):
        TokenDataset(texts=["a", "b"], store=texts_store)


def test_a_damaged_fingerprint_memo_is_only_a_lost_shortcut(cache, text_file):
    path = TokenDataset(text_file, block_size=64).store.path
    memo = cache / "tokenizer-fingerprints.json"
    assert json.loads(memo.read_text())
    memo.write_text("{not json")
    assert TokenDataset(text_file, block_size=64).store.path == path
    memo.write_text(json.dumps({key: {"fingerprint": "sha256:wrong", "eos_id": 1} for key in ["x"]}))
    assert TokenDataset(text_file, block_size=64).store.path == path


def _build_in_child(args):
    cache_folder, text_path = args
    os.environ["MMTOK_CACHE_DIR"] = cache_folder
    ds = mmtok.TokenDataset(text_path, block_size=64)
    return ds.store.path, len(ds), int(ds[-1].sum())


def test_concurrent_processes_build_one_store(cache, real_text_file):
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build_in_child, [(str(cache), str(real_text_file))] * 2)
    assert results[0] == results[1]
    path = results[0][0]
    assert [entry.path for entry in storecache.list_stores()] == [path]
    verify_store(path)
    assert not [name for name in os.listdir(os.path.join(path, "shards")) if name.startswith(".tmp")]


def test_list_and_clean_everything(cache, text_file):
    assert storecache.list_stores() == [] and storecache.clean_stores() == []
    a = TokenDataset(text_file, block_size=64).store
    b = TokenDataset(texts=["x y z"]).store
    listed = storecache.list_stores()
    assert [entry.path for entry in listed] == sorted([a.path, b.path])
    by_path = {entry.path: entry for entry in listed}
    assert by_path[a.path].inputs == (str(text_file),) and by_path[b.path].inputs == ("texts",)
    assert all(entry.complete and not entry.stale and entry.bytes > 0 for entry in listed)
    assert sorted(storecache.clean_stores()) == sorted([a.path, b.path])
    assert os.listdir(cache / "stores") == []
    assert TokenDataset(texts=["x y z"]).store.path == b.path  # rebuilt on demand


def test_stores_command_lists_and_cleans(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mmtok import TokenDataset
    from mmtok.cli import main

    monkeypatch.setenv("MMTOK_CACHE_DIR", str(tmp_path / "cache"))
    text = tmp_path / "a.txt"
    text.write_text("A small text for the store cache command.\n" * 50)
    TokenDataset(text, block_size=8)
    runner = CliRunner()
    listed = runner.invoke(main, ["stores"])
    assert listed.exit_code == 0 and "complete" in listed.output and "a.txt" in listed.output
    assert "1 store," in listed.output
    text.write_text("changed")
    assert "stale" in runner.invoke(main, ["stores", "--stale"]).output
    cleaned = runner.invoke(main, ["stores", "--clean", "--stale"])
    assert cleaned.exit_code == 0 and "removed 1 store" in cleaned.output
    assert "0 stores," in runner.invoke(main, ["stores"]).output


def test_automatic_stores_share_one_tokenizer_file(cache, tmp_path, docs_prose):
    """Issue 10, item 9: every automatic store carried its own 1.5 MB copy of the same tokenizer.json."""
    paths = []
    for i in range(3):
        path = tmp_path / f"t{i}.txt"
        path.write_text(docs_prose[i * 5000:(i + 1) * 5000], encoding="utf-8")
        paths.append(path)
    stores = [TokenDataset(str(p)).store for p in paths] + [TokenDataset(texts=["one", "two"]).store]
    files = [os.path.join(s.path, "tokenizer.json") for s in stores]
    inodes = {os.stat(f).st_ino for f in files}
    assert len(inodes) == 1 and os.stat(files[0]).st_nlink == len(stores) + 1  # + the shared copy
    shared = os.listdir(os.path.join(cache, "tokenizers"))
    assert shared == [stores[0].manifest["tokenizer"]["file_sha256"] + ".json"]
    for store in stores:  # each store is still whole on its own
        assert mmtok.store.verify_store(store.path)["shards"] == len(store.shards)
        assert store.tokenizer.fingerprint == store.fingerprint
    from click.testing import CliRunner

    from mmtok.cli.main import main

    listing = CliRunner().invoke(main, ["stores"]).output
    total = float(listing.splitlines()[-1].split(", ")[1].split(" MB")[0])
    each = [float(line.split()[0]) for line in listing.splitlines()[:-1]]
    assert len(each) == 4 and total < sum(each) - 3 * 1.4  # the shared tokenizer file counted once
    mmtok.views.clean_stores()
    assert os.listdir(os.path.join(cache, "tokenizers")) == []  # no store links to it any more
