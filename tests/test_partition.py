"""Partitioned builds: split, build_partition, commit, and `mmtok build --rank/--world-size` + `mmtok commit`.

The committed store must hold the token stream and document ends of a single
build of the same inputs, pass verify, and be byte-identical however it was
produced (killed and retried, other worker counts).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from storetools import snapshot

import mmtok
from mmtok.base.errors import StoreError, StoreExistsError, TokenizerMismatchError
from mmtok.cli import main
from mmtok.inputs.sources import resolve_source
from mmtok.inputs.split import split_sources
from mmtok.store.verify import verify_store
from mmtok.tokenize.tokenizer import default_tokenizer

SMALL = {"shard_tokens": 3000, "chunk_bytes": 8192}


def stream_and_ends(store):
    """The whole token stream and every document end of a store."""
    ends = [np.asarray(store.shard_docs(i)) for i in range(len(store.shards))]
    return np.asarray(store.tokens[:]), np.concatenate(ends) if ends else np.empty(0, np.int64)


def assert_same_stream(a, b):
    ta, ea = stream_and_ends(a)
    tb, eb = stream_and_ends(b)
    assert ta.shape == tb.shape and np.array_equal(ta, tb)
    assert np.array_equal(ea, eb)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, docs_prose):
    """Bulk text (split by byte ranges), JSON lines and line-by-line text (split at lines),
    CSV and gzip (not splittable inside): every kind of cut."""
    folder = tmp_path_factory.mktemp("partition-corpus")
    lines = [line for line in docs_prose.splitlines() if line.strip()]
    (folder / "bulk.txt").write_text(docs_prose[:150_000], encoding="utf-8")
    (folder / "rows.csv").write_text("text\n" + "".join(f'"{l[:80].replace(chr(34), "")}"\n' for l in lines[:300]),
                                     encoding="utf-8")
    (folder / "records.jsonl").write_text("".join(json.dumps({"text": l}) + "\n" for l in lines[300:1500]),
                                          encoding="utf-8")
    with gzip.open(folder / "more.txt.gz", "wt", encoding="utf-8") as f:
        f.write(docs_prose[150_000:200_000])
    (folder / "tail.txt").write_text(docs_prose[200_000:260_000], encoding="utf-8")
    return [str(folder / name) for name in ("bulk.txt", "rows.csv", "records.jsonl", "more.txt.gz", "tail.txt")]


@pytest.fixture(scope="module")
def single(corpus, tmp_path_factory):
    return mmtok.build(corpus, tmp_path_factory.mktemp("single") / "single.mmtok", **SMALL)


def build_all(corpus, root, world_size, **options):
    parts = split_sources([resolve_source(p) for p in corpus], world_size, cut_rules=default_tokenizer().cut_rules)
    for rank, part in enumerate(parts):
        mmtok.build_partition(part, root, rank, **{**SMALL, **options})
    return parts


@pytest.mark.parametrize("world_size", [1, 3, 7])
def test_committed_partitions_equal_the_single_build(corpus, single, tmp_path, world_size):
    root = tmp_path / "parts.mmtok"
    parts = build_all(corpus, root, world_size)
    assert len(parts) == world_size
    if world_size >= 3:
        assert any(s.span is not None and s.span.start > 0 for part in parts for s in part)  # a file was cut
    store = mmtok.commit(root, expect=world_size)
    assert_same_stream(store, single)
    assert store.num_documents == single.num_documents
    assert verify_store(str(root))["leftovers"] == []
    assert not (root / "partitions").exists()
    assert [p["id"] for p in store.manifest["build"]["partitions"]] == list(range(world_size))


def test_more_ranks_than_cuts_give_empty_partitions(corpus, tmp_path):
    gz = corpus[3]  # compressed: never cut inside
    parts = build_all([gz], tmp_path / "root", 3)
    assert sorted(map(len, parts)) == [0, 0, 1]
    store = mmtok.commit(tmp_path / "root", expect=3)
    assert_same_stream(store, mmtok.build(gz, tmp_path / "single.mmtok", **SMALL))
    verify_store(str(tmp_path / "root"))


def test_splits_cut_bulk_text_only_at_safe_points(corpus):
    tok = default_tokenizer()
    sources = [resolve_source(corpus[0])]
    parts = split_sources(sources, 5, cut_rules=tok.cut_rules)
    text = open(corpus[0], "rb").read()
    cuts = [part[0].span.start for part in parts[1:]]
    assert cuts == sorted(cuts) and all(0 < c < len(text) for c in cuts)
    whole = tok.encode(text.decode("utf-8"))
    pieces = [tok.encode(text[a:b].decode("utf-8")) for a, b in zip([0] + cuts, cuts + [len(text)])]
    assert sum(pieces, []) == whole
    # every rank computes the same split on its own
    assert split_sources(sources, 5, cut_rules=tok.cut_rules) == parts


def test_line_splits_start_at_a_line_and_count_lines(corpus):
    source = resolve_source(corpus[2])
    parts = split_sources([source], 4, cut_rules=default_tokenizer().cut_rules)
    data = open(corpus[2], "rb").read()
    for part in parts[1:]:
        span = part[0].span
        assert data[span.start - 1:span.start] == b"\n"
        assert span.lines == data[:span.start].count(b"\n")


def test_error_in_a_split_names_the_line_of_the_whole_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = "".join(json.dumps({"text": f"line {i} " * 20}) + "\n" for i in range(400))
    path.write_text(good + "{not json}\n" + good)
    part = split_sources([resolve_source(path)], 2, cut_rules=frozenset())[0]
    with pytest.raises(mmtok.InputError, match=r"bad.jsonl:401: not valid JSON"):
        mmtok.build_partition(part, tmp_path / "root", 0)


def test_commit_refuses_a_missing_partition(corpus, tmp_path):
    root = tmp_path / "parts.mmtok"
    parts = split_sources([resolve_source(p) for p in corpus], 4, cut_rules=default_tokenizer().cut_rules)
    for rank in (0, 1, 3):
        mmtok.build_partition(parts[rank], root, rank, **SMALL)
    before = snapshot(root)
    with pytest.raises(StoreError, match=r"1 of 4 partitions are missing: partition\(s\) 2 never started"):
        mmtok.commit(root)
    with pytest.raises(StoreError, match=r"partition\(s\) 2 never started"):
        mmtok.commit(root, expect=4)
    assert snapshot(root) == before and not (root / "manifest.json").exists()
    # a partition that started but has no manifest (running, or crashed) is named as such
    (root / "partitions" / "000002").mkdir()
    with pytest.raises(StoreError, match=r"2 started but did not finish"):
        mmtok.commit(root)
    # and one that never started after the last one that did needs --expect to be noticed
    mmtok.build_partition(parts[2], root, 2, **SMALL)
    with pytest.raises(StoreError, match=r"partition\(s\) 4 never started"):
        mmtok.commit(root, expect=5)
    with pytest.raises(StoreError, match=r"--expect 3 says ids stop at 2"):
        mmtok.commit(root, expect=3)


def test_allow_missing_commits_the_rest_and_records_what_is_missing(corpus, tmp_path):
    root = tmp_path / "parts.mmtok"
    parts = split_sources([resolve_source(p) for p in corpus], 4, cut_rules=default_tokenizer().cut_rules)
    assert parts[0][-1].span is not None and parts[0][-1].span.stop < parts[0][-1].size  # ends inside bulk.txt
    mmtok.build_partition(parts[0], root, 0, **SMALL)
    mmtok.build_partition(parts[3], root, 3, **SMALL)
    # partition 0 ends inside a document that partition 1 continues: never joined to partition 3
    with pytest.raises(StoreError, match="partition 0 ends inside a document that partition 1 continues"):
        mmtok.commit(root, expect=4, allow_missing=True)
    mmtok.build_partition(parts[1], root, 1, **SMALL)
    store = mmtok.commit(root, expect=4, allow_missing=True)
    assert store.manifest["build"]["missing_partitions"] == [2]
    verify_store(str(root))
    # the committed stream is partitions 0, 1 and 3 in order
    whole = [mmtok.build(part, tmp_path / f"p{i}.mmtok", **SMALL) for i, part in enumerate(parts) if i != 2]
    assert np.array_equal(store.tokens[:], np.concatenate([s.tokens[:] for s in whole if s.num_tokens]))


def test_commit_refuses_partitions_of_different_tokenizers(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[eos]": 0, "[unk]": 1, "a": 2, "b": 3}
    other = Tokenizer(models.WordLevel(vocab, unk_token="[unk]"))
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    root = tmp_path / "root"
    mmtok.build_partition(None, root, 0, texts=["a b", "b"])
    mmtok.build_partition(None, root, 1, texts=["a b"], tokenizer=other, eos_token="[eos]")
    with pytest.raises(TokenizerMismatchError, match="partition 1 was made with tokenizer"):
        mmtok.commit(root)
    mmtok.build_partition(None, root, 1, texts=["b a"], shard_tokens=5)
    with pytest.raises(StoreError, match="partition 1 was built with settings"):
        mmtok.commit(root)


def test_retried_partition_overwrites_never_duplicates(tmp_path):
    root = tmp_path / "root"
    mmtok.build_partition(None, root, 0, texts=["first text"])
    mmtok.build_partition(None, root, 1, texts=["second"])
    mmtok.build_partition(None, root, 1, texts=["second, retried"])  # a retried task with other output
    mmtok.build_partition(None, root, 1, texts=["second, retried"])
    store = mmtok.commit(root, expect=2)
    assert [store.tokenizer.decode(store.documents[i][:-1]) for i in range(store.num_documents)] == [
        "first text", "second, retried"]
    # committing again is a no-op; a committed store takes no more partitions
    assert snapshot(root) == snapshot(mmtok.commit(root).path)
    with pytest.raises(StoreExistsError, match="already a committed store"):
        mmtok.build_partition(None, root, 2, texts=["late"])


def test_finished_file_partition_is_left_as_is_when_retried(corpus, tmp_path):
    root = tmp_path / "root"
    result = mmtok.build_partition(corpus[2], root, 0, **SMALL)
    manifest = os.path.join(result["path"], "manifest.json")
    stamp = os.stat(manifest).st_mtime_ns
    assert mmtok.build_partition(corpus[2], root, 0, **SMALL) == result
    assert os.stat(manifest).st_mtime_ns == stamp


def _rank_command(corpus, root, rank, world_size, workers=1):
    return [sys.executable, "-m", "mmtok", "build", *corpus, "-o", str(root), "--rank", str(rank),
            "--world-size", str(world_size), "--workers", str(workers), "-q",
            "--shard-tokens", "3000", "--chunk-bytes", "8192"]


def test_killed_rank_is_retried_and_commits_to_the_single_build(corpus, tmp_path):
    """Four ranks as separate processes; one SIGKILLed mid-build and rerun; the commit equals the
    single-machine build and is byte-identical to an uninterrupted partitioned build."""
    root = tmp_path / "killed.mmtok"
    victim = 1
    others = [subprocess.Popen(_rank_command(corpus, root, rank, 4)) for rank in range(4) if rank != victim]
    process = subprocess.Popen(_rank_command(corpus, root, victim, 4))
    journal = root / "partitions" / f"{victim:06d}" / "build-journal.json"
    deadline = time.monotonic() + 60
    while not journal.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert [other.wait() for other in others] == [0, 0, 0]
    assert journal.exists() and not journal.with_name("manifest.json").exists(), "the kill came too late"
    with pytest.raises(StoreError, match=f"{victim} started but did not finish"):
        mmtok.commit(root, expect=4)
    subprocess.run(_rank_command(corpus, root, victim, 4), check=True)  # the retry resumes from the journal
    result = CliRunner().invoke(main, ["commit", str(root), "--expect", "4"])
    assert result.exit_code == 0, result.output
    assert "committed 4 partitions" in result.output
    store = mmtok.open(root)
    single = mmtok.build(corpus, tmp_path / "single.mmtok", **SMALL)
    assert_same_stream(store, single)
    assert CliRunner().invoke(main, ["verify", str(root)]).exit_code == 0
    # byte-deterministic: an uninterrupted partitioned build with 2 workers gives the same files
    clean = tmp_path / "clean.mmtok"
    build_all(corpus, clean, 4, **SMALL, workers=2)
    mmtok.commit(clean, expect=4)
    assert snapshot(root) == snapshot(clean)


def test_cli_rank_usage_errors(corpus, tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "x.mmtok")
    for args, message in [
        (["--rank", "1"], "--rank and --world-size go together"),
        (["--world-size", "2"], "--rank and --world-size go together"),
        (["--rank", "2", "--world-size", "2"], "--rank 2 is not below --world-size 2"),
        (["--rank", "0", "--world-size", "2", "--append"], "--append does not combine with --rank"),
    ]:
        result = runner.invoke(main, ["build", corpus[0], "-o", out, *args])
        assert result.exit_code == 2 and message in result.output, result.output
    result = runner.invoke(main, ["commit", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no such folder" in result.output
    assert "Traceback" not in result.output


def test_cli_commit_allow_missing_warns(corpus, tmp_path):
    runner = CliRunner()
    root = str(tmp_path / "r.mmtok")
    result = runner.invoke(main, ["build", corpus[2], "-o", root, "--rank", "1", "--world-size", "2", "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["commit", root, "--expect", "2"])
    assert result.exit_code == 1 and "partition(s) 0 never started" in result.output
    result = runner.invoke(main, ["commit", root, "--expect", "2", "--allow-missing"])
    assert result.exit_code == 0 and "warning: committed without partition(s) 0" in result.output
