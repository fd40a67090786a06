"""Leftovers of killed or failed runs: removed by the next run of the same command or by `mmtok stores --clean`,
and only when no live process owns them."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

import mmtok
from mmtok import TokenDataset
from mmtok.cli import main
from mmtok.store.tempfiles import owned_temp_dir, remove_orphans


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("MMTOK_CACHE_DIR", str(folder))
    return folder


def test_failed_from_cache_imports_leave_no_lock_files(tmp_path, cache_dir):
    bad = tmp_path / "dataset_cache.tar.gz"
    bad.write_bytes(gzip.compress(b"\x93NUMPY not really"))
    for _ in range(3):
        with pytest.raises(mmtok.MmtokError):
            TokenDataset(str(bad), from_cache=True)
    stores = cache_dir / "stores"
    assert not stores.exists() or [n for n in os.listdir(stores) if n.endswith(".lock")] == []


def test_orphans_go_but_a_live_owners_temporary_stays(tmp_path):
    # A temporary whose writer died (no lock) is removed; one held by a live writer is not.
    dead = tmp_path / ".tmp-import-x.mmtok.dead"
    dead.mkdir()
    (dead / "manifest.json").write_text("{}")
    alive = owned_temp_dir(str(tmp_path), ".tmp-import-x.mmtok.")
    removed = remove_orphans(str(tmp_path), ".tmp-import-x.mmtok.")
    assert removed == [str(dead)] and os.path.isdir(alive.path)
    alive.release()
    assert remove_orphans(str(tmp_path), ".tmp-import-x.mmtok.") == [alive.path]


def test_a_killed_import_is_cleaned_by_the_next_import(tmp_path, docs_prose):
    store = mmtok.build(texts=[docs_prose[:20_000]], path=tmp_path / "s.mmtok", workers=1)
    cache = tmp_path / "c.gz"
    assert CliRunner().invoke(main, ["export", str(store.path), "-o", str(cache), "-q"]).exit_code == 0
    dest = tmp_path / "dest" / "x.mmtok"
    env = dict(os.environ, MMTOK_FAULT="kill:import-section")
    killed = subprocess.run([sys.executable, "-m", "mmtok", "import", str(cache), "-o", str(dest), "-q"], env=env)
    assert killed.returncode == -signal.SIGKILL
    assert [n for n in os.listdir(dest.parent) if n.startswith(".tmp-import-x.mmtok.")]  # what it left
    listed = subprocess.run([sys.executable, "-m", "mmtok", "import", str(cache), "-o", str(dest), "-q"])
    assert listed.returncode == 0
    assert os.listdir(dest.parent) == ["x.mmtok"]


def test_stores_lists_and_cleans_leftovers(tmp_path, cache_dir):
    stores = cache_dir / "stores"
    stores.mkdir(parents=True)
    (stores / ".tmp-import-a.mmtok.abc").mkdir()
    (stores / "import-a-0123.mmtok.lock").write_text("")
    live = owned_temp_dir(str(stores), ".tmp-import-b.mmtok.")
    runner = CliRunner()
    listed = runner.invoke(main, ["stores"])
    assert listed.exit_code == 0 and listed.output.count("leftover") == 3
    cleaned = runner.invoke(main, ["stores", "--clean"])
    assert cleaned.exit_code == 0 and "2 leftovers" in cleaned.output
    assert sorted(os.listdir(stores)) == [os.path.basename(live.path)]
    live.release()


def test_cleaning_a_stored_dataset_removes_its_packing_files(tmp_path, cache_dir):
    """A packing file is keyed by its store's contents: once `mmtok stores --clean` removes the store, nothing
    would ever map it again, so it goes with the store; the packing of a store kept elsewhere stays."""
    text = tmp_path / "docs.txt"
    text.write_text("".join(f"document {i} " + "word " * (i % 37) + "\n" for i in range(300)), encoding="utf-8")
    cached = TokenDataset(str(text), line_by_line=True, block_size=64, packing="bfd")
    cached[0]
    kept = mmtok.build(str(text), tmp_path / "kept.mmtok", line_by_line=True)
    for seed in (0, 1):
        TokenDataset.open(kept.path, block_size=64, packing="bfd", packing_seed=seed)[0]
    packing = cache_dir / "packing"
    before = sorted(os.listdir(packing))
    assert len(before) == 3 and sum(name.startswith("kept.mmtok-bfd-64-") for name in before) == 2
    cleaned = CliRunner().invoke(main, ["stores", "--clean"])
    assert cleaned.exit_code == 0 and "removed 1 store" in cleaned.output, cleaned.output
    assert os.listdir(cache_dir / "stores") == []
    assert sorted(os.listdir(packing)) == [name for name in before if name.startswith("kept.mmtok-")]
