"""An append is idempotent for the same request: a rerun (after it finished, or was killed after its commit)
appends nothing and says so; --again appends the same inputs once more; a changed file is a new request."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import pytest
from click.testing import CliRunner
from storetools import snapshot

import mmtok
from mmtok.cli import main

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


@pytest.fixture()
def files(tmp_path, docs_prose):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(docs_prose[:20_000], encoding="utf-8")
    b.write_text(docs_prose[20_000:35_000], encoding="utf-8")
    return a, b


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_rerun_of_an_append_appends_nothing_and_says_so(tmp_path, files):
    a, b = files
    out = tmp_path / "s.mmtok"
    assert _cli("build", a, "-o", out, "-q").exit_code == 0
    assert _cli("build", b, "-o", out, "--append", "-q").exit_code == 0
    once = snapshot(out)
    rerun = _cli("build", b, "-o", out, "--append")
    assert rerun.exit_code == 0
    assert "nothing appended" in rerun.output and "--again" in rerun.output
    assert snapshot(out) == once
    again = _cli("build", b, "-o", out, "--append", "--again", "-q")
    assert again.exit_code == 0
    store = mmtok.open(out)
    assert [e["path"] for e in store.manifest["inputs"]] == [str(a), str(b), str(b)]
    assert [h["again"] for h in store.manifest["history"]] == [False, False, True]
    assert store.documents[2].tolist() == store.documents[1].tolist()
    assert _cli("build", a, "-o", out, "--again").exit_code == 2  # --again needs --append


def test_the_same_file_changed_is_a_new_request(tmp_path, files):
    a, b = files
    out = tmp_path / "s.mmtok"
    mmtok.build(a, out)
    mmtok.build(b, out, append=True)
    b.write_text(b.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    store = mmtok.build(b, out, append=True)
    assert store.num_documents == 3


def test_python_api_warns_or_calls_on_note(tmp_path, files):
    a, b = files
    out = tmp_path / "s.mmtok"
    mmtok.build(a, out)
    mmtok.build(b, out, append=True)
    with pytest.warns(UserWarning, match="nothing appended"):
        assert mmtok.build(b, out, append=True).num_documents == 2
    notes = []
    assert mmtok.build(b, out, append=True, on_note=notes.append).num_documents == 2
    assert len(notes) == 1
    assert mmtok.build(b, out, append=True, again=True).num_documents == 3


def test_texts_appends_are_always_new(tmp_path, files):
    a, _ = files
    out = tmp_path / "s.mmtok"
    mmtok.build(a, out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mmtok.build(texts=["hello"], path=out, append=True)
        assert mmtok.build(texts=["hello"], path=out, append=True).num_documents == 3


def test_a_version_1_store_gains_a_history_on_append(tmp_path):
    old = tmp_path / "old.mmtok"
    shutil.copytree(os.path.join(GOLDEN, "store.mmtok"), old)
    extra = tmp_path / "extra.txt"
    extra.write_text("Appended to a version 1 store.\n", encoding="utf-8")
    tok = os.path.join(GOLDEN, "tokenizer.json")
    store = mmtok.build(extra, old, append=True, tokenizer=tok)
    assert store.manifest["version"] == 2 and len(store.manifest["history"]) == 1
    notes = []
    mmtok.build(extra, old, append=True, tokenizer=tok, on_note=notes.append)
    assert notes and mmtok.open(old).num_documents == store.num_documents
    mmtok.store.verify_store(old)


def test_several_inputs_on_the_command_line(tmp_path, files):
    # `mmtok build a b -o s` failed with a KeyError in 0.1.0 (options consumed by the first input).
    a, b = files
    out = tmp_path / "s.mmtok"
    result = _cli("build", a, b, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["num_documents"] == 2
