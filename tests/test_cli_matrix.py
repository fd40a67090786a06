"""The command line as a matrix: every subcommand, one input and several, every input kind,
--append in each mode combination, and each option that cannot apply to the inputs given."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from storetools import snapshot

import mmtok
from mmtok.cli.main import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, docs_prose):
    """Small real inputs of every kind (Python's documentation), by name."""
    import zstandard

    folder = tmp_path_factory.mktemp("matrix")
    paragraphs = [p.strip().replace("\n", " ") for p in docs_prose.split("\n\n") if p.strip()]
    (folder / "a.txt").write_text(docs_prose[:30_000], encoding="utf-8")
    (folder / "b.txt").write_text(docs_prose[30_000:50_000], encoding="utf-8")
    (folder / "lines.txt").write_text("\n".join(paragraphs[:40]) + "\n", encoding="utf-8")
    with gzip.open(folder / "c.txt.gz", "wt", encoding="utf-8") as f:
        f.write(docs_prose[50_000:60_000])
    for name, rows in (("p.csv", paragraphs[40:70]), ("q.csv", paragraphs[70:90])):
        with open(folder / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text"])
            writer.writerows([r] for r in rows)
    with open(folder / "wide.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "body"])
        writer.writerows([i, r] for i, r in enumerate(paragraphs[90:110]))
    jsonl = "".join(json.dumps({"text": p, "body": p.upper()}) + "\n" for p in paragraphs[110:140])
    (folder / "d.jsonl").write_text(jsonl, encoding="utf-8")
    (folder / "d.jsonl.gz").write_bytes(gzip.compress(jsonl.encode("utf-8")))
    (folder / "d.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl.encode("utf-8")))
    return folder


def _run(folder, *args):
    old = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)
    assert "Traceback" not in result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _same_store(cli_store, api_store):
    a, b = mmtok.open(cli_store), mmtok.open(api_store)
    np.testing.assert_array_equal(a.tokens[:], b.tokens[:])
    np.testing.assert_array_equal(a.documents.lengths(), b.documents.lengths())
    assert a.line_by_line == b.line_by_line


KINDS = [
    (["a.txt"], {}, 1),
    (["c.txt.gz"], {}, 1),
    (["lines.txt", "--line-by-line"], {"line_by_line": True}, 40),
    (["p.csv"], {}, 30),
    (["wide.csv", "--column", "body"], {"column": "body"}, 20),
    (["wide.csv", "--column", "1"], {"column": 1}, 20),
    (["d.jsonl"], {}, 30),
    (["d.jsonl.gz", "--field", "body"], {"field": "body"}, 30),
    (["d.jsonl.zst"], {}, 30),
    # several inputs per build (issue 10, item 1: these crashed with KeyError: 'line_by_line')
    (["a.txt", "b.txt"], {}, 2),
    (["p.csv", "q.csv"], {}, 50),
    (["a.txt", "d.jsonl", "p.csv"], {}, 61),
    (["p.csv", "wide.csv", "--column", "0"], {"column": 0}, None),  # p.csv has one column: 0 is its text
]


@pytest.mark.parametrize("args, options, documents", KINDS, ids=[" ".join(k[0]) for k in KINDS])
def test_build_each_kind_one_and_several_inputs(tmp_path, files, args, options, documents):
    inputs = [a for a in args if (files / a).is_file()]
    result = _run(files, "build", *args, "-o", tmp_path / "cli.mmtok", "-q")
    assert result.exit_code == 0, result.output
    api = mmtok.build([files / name for name in inputs], tmp_path / "api.mmtok", **options)
    _same_store(tmp_path / "cli.mmtok", api.path)
    if documents is not None:
        assert api.num_documents == documents
    assert [os.path.basename(e["path"]) for e in mmtok.open(tmp_path / "cli.mmtok").manifest["inputs"]] == inputs


# (first build, appended input): whether the append is refused (it would turn a line-by-line store bulk).
APPENDS = [
    (["a.txt"], ["b.txt"], False),
    (["a.txt"], ["lines.txt", "--line-by-line"], False),
    (["a.txt"], ["p.csv"], False),
    (["a.txt"], ["d.jsonl"], False),
    (["lines.txt", "--line-by-line"], ["b.txt"], True),
    (["lines.txt", "--line-by-line"], ["b.txt", "--line-by-line"], False),
    (["p.csv"], ["b.txt"], True),
    (["p.csv"], ["b.txt", "--line-by-line"], False),
    (["p.csv"], ["q.csv"], False),
    (["d.jsonl"], ["b.txt"], True),
    (["d.jsonl"], ["p.csv"], False),
    (["d.jsonl"], ["d.jsonl.zst"], False),
]


@pytest.mark.parametrize("first, more, refused", APPENDS, ids=[f"{' '.join(a)} + {' '.join(b)}" for a, b, _ in APPENDS])
def test_append_in_each_mode_combination_keeps_the_reading_mode(tmp_path, files, first, more, refused):
    out = tmp_path / "s.mmtok"
    assert _run(files, "build", *first, "-o", out, "-q").exit_code == 0
    before, mode = snapshot(out), mmtok.open(out).line_by_line
    result = _run(files, "build", *more, "-o", out, "--append", "-q")
    if refused:
        assert result.exit_code == 2
        assert "--line-by-line" in result.output and more[0] in result.output
        assert snapshot(out) == before
    else:
        assert result.exit_code == 0, result.output
        store = mmtok.open(out)
        assert store.line_by_line == mode and len(store.manifest["inputs"]) == 2
        view = mmtok.TokenDataset.open(out, block_size=64)
        assert view.line_by_line == mode
        if mode:
            assert len(view) == store.num_documents


# Options that cannot apply to any input: exit 2, naming the option as typed and the input.
NOT_APPLYING = [
    (["a.txt", "--column", "body"], "--column"),
    (["d.jsonl", "--column", "1"], "--column"),
    (["a.txt", "--field", "body"], "--field"),
    (["a.txt", "--field", "text"], "--field"),  # given explicitly, even with the default value
    (["p.csv", "--field", "body"], "--field"),
    (["a.txt", "--no-header"], "--no-header"),
    (["d.jsonl", "--no-header"], "--no-header"),
    (["p.csv", "--bulk"], "--bulk"),
    (["d.jsonl", "q.csv", "--bulk"], "--bulk"),
    (["a.txt", "b.txt", "--column", "0"], "--column"),
    (["a.txt", "--csv-field-limit", "100"], "--csv-field-limit"),
    (["d.jsonl", "b.txt", "--csv-field-limit", "100"], "--csv-field-limit"),
]


@pytest.mark.parametrize("args, option", NOT_APPLYING, ids=[" ".join(a) for a, _ in NOT_APPLYING])
def test_options_that_cannot_apply_are_usage_errors(tmp_path, files, args, option):
    result = _run(files, "build", *args, "-o", tmp_path / "s.mmtok")
    assert result.exit_code == 2, result.output
    assert f"{option} does not apply to {args[0]}" in result.output
    assert "=" not in result.output.split("Error:")[1].split("does not apply")[0]  # CLI words, not column=
    assert not (tmp_path / "s.mmtok").exists()


def test_python_and_tokendataset_spell_the_options_their_way(tmp_path, files):
    with pytest.raises(mmtok.OptionError, match=r"column= does not apply to .*a\.txt"):
        mmtok.build(files / "a.txt", tmp_path / "s", column="body")
    with pytest.raises(ValueError, match=r"text_column= does not apply"):
        mmtok.TokenDataset(str(files / "a.txt"), text_column="body", store=tmp_path / "t")
    with pytest.raises(mmtok.OptionError, match=r"field= does not apply"):
        mmtok.build(files / "p.csv", tmp_path / "s", field="body")
    with pytest.raises(mmtok.OptionError, match=r"csv_field_limit= does not apply to .*d\.jsonl"):
        mmtok.build(files / "d.jsonl", tmp_path / "s", csv_field_limit=1000)
    # an option that applies to one input of a mixed build is fine
    assert mmtok.build([files / "a.txt", files / "wide.csv"], tmp_path / "mixed", column="body").num_documents == 21


@pytest.mark.parametrize("option", ["--block-size", "--stride"])
def test_reading_options_on_build_are_explained(tmp_path, files, option):
    result = _run(files, "build", "a.txt", option, "64", "-o", tmp_path / "s.mmtok")
    assert result.exit_code == 2
    assert f"{option} is not a build option" in result.output and "block_size=N" in result.output
    assert "Did you mean" not in result.output


def test_every_subcommand_on_a_built_store(tmp_path, files):
    out = tmp_path / "s.mmtok"
    assert _run(files, "build", "p.csv", "q.csv", "-o", out, "-q").exit_code == 0
    info = _run(files, "info", out)
    assert info.exit_code == 0 and "50 (line by line)" in info.output and "q.csv" in info.output
    assert json.loads(_run(files, "info", out, "--json").output)["documents"] == 50
    assert "OK (1 shard" in _run(files, "verify", out).output
    assert _run(files, "show", out, "--doc", "3").output.strip()
    assert _run(files, "show", out, "--sample", "-1", "--block-size", "8", "--ids").output.strip()
    cache = tmp_path / "c.tar.gz"
    assert _run(files, "export", out, "-o", cache, "-q").exit_code == 0
    # export and import both refuse an existing output without --force (item 9)
    first = cache.read_bytes()
    refused = _run(files, "export", out, "-o", cache, "-q")
    assert refused.exit_code == 1 and "--force" in refused.output and cache.read_bytes() == first
    assert _run(files, "export", out, "-o", cache, "-q", "--force").exit_code == 0
    copy = tmp_path / "copy.mmtok"
    assert _run(files, "import", cache, "-o", copy, "-q").exit_code == 0
    refused = _run(files, "import", cache, "-o", copy, "-q")
    assert refused.exit_code == 1 and "--force" in refused.output
    assert _run(files, "import", cache, "-o", copy, "-q", "--force").exit_code == 0
    assert snapshot(copy) == snapshot(out)
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("mine")
    assert _run(files, "import", cache, "-o", not_a_store, "--force").exit_code == 1
    assert not_a_store.read_text() == "mine"
    stores = _run(files, "stores")
    assert stores.exit_code == 0


def test_merge_prints_repetition_and_info_shows_the_view_tree(tmp_path, files):
    big, small = tmp_path / "big.mmtok", tmp_path / "small.mmtok"
    _run(files, "build", "d.jsonl", "p.csv", "-o", big, "-q")
    _run(files, "build", "q.csv", "-o", small, "-q")
    out = tmp_path / "mixed.mmtok"
    result = _run(files, "merge", big, small, "-o", out, "--weights", "0.2,0.8", "--num-samples", "500",
                  "--block-size", "64", "--seed", "3")
    assert result.exit_code == 0, result.output
    draws = mmtok.open(out).manifest["inputs"][0]["view"]["draws"]
    times = draws[1] / 20
    assert f"small.mmtok: 20 samples (line by line); weight 0.8, gives {draws[1]:,}: repeated {times:.1f}x" in result.output
    info = _run(files, "info", out).output
    assert "blend by tokens of 2 sources, seed 3: 500 samples" in info
    assert f"repeated {times:.1f}x" in info and "big.mmtok: 60 samples" in info
    merged = tmp_path / "merged.mmtok"
    result = _run(files, "merge", big, small, "-o", merged, "--block-size", "64", "--seed", "1")
    assert "big.mmtok: 60 samples (line by line); gives 20 (33%, chosen at random)" in result.output


def test_merge_errors_use_the_command_line_words(tmp_path, files):
    tiny = tmp_path / "empty.mmtok"
    _run(files, "build", "p.csv", "-o", tiny, "-q")
    other = tmp_path / "other.mmtok"
    tok = tmp_path / "tok.json"
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "<eos>": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(["<eos>"])
    backend.save(str(tok))
    assert _run(files, "build", "q.csv", "-o", other, "--tokenizer", tok, "--eos-token", "<eos>", "-q").exit_code == 0
    result = _run(files, "merge", tiny, other, "-o", tmp_path / "m.mmtok")
    assert result.exit_code == 1 and "datasets[" not in result.output and str(other) in result.output


def test_progress_lines_in_a_log_and_quiet(tmp_path, files):
    env = dict(os.environ, MMTOK_PROGRESS_SECONDS="0.001")
    mmtok_bin = os.path.join(os.path.dirname(sys.executable), "mmtok")
    log = tmp_path / "build.log"
    with open(log, "w") as stderr:
        subprocess.run([mmtok_bin, "build", files / "a.txt", "-o", tmp_path / "s.mmtok", "--chunk-bytes", "2000",
                        "--workers", "1"], stderr=stderr, env=env, check=True)
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("build |")]
    assert lines and "\r" not in text and all("tok/s" in line for line in lines)
    quiet = subprocess.run([mmtok_bin, "build", files / "b.txt", "-o", tmp_path / "q.mmtok", "--chunk-bytes", "2000",
                            "-q"], capture_output=True, env=env, check=True)
    assert quiet.stderr == b"" and quiet.stdout == b""
