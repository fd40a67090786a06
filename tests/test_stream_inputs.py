"""Inputs that are streams (stdin "-", a FIFO, a process substitution): read once, never reopened or sought."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading

import pytest

import mmtok
from mmtok.base.errors import InputError
from mmtok.inputs.sources import resolve_source

CLI = "import sys; from mmtok.cli import main; sys.exit(main())"
TEXT = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog {i * 31 % 97}.\n" for i in range(3000))


def _tokens(store) -> bytes:
    return b"".join(open(os.path.join(store.path, "shards", f"{s['name']}.tokens.npy"), "rb").read()
                    for s in store.manifest["shards"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    (folder / "a.txt").write_text(TEXT)
    return mmtok.build(str(folder / "a.txt"), folder / "ref.mmtok", chunk_bytes=4096)


def _cli(args, stdin: bytes, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], input=stdin, capture_output=True, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize("compress", [False, True])
def test_stdin_builds_the_same_store_as_the_file(tmp_path, reference, compress):
    data = TEXT.encode()
    done = _cli(["build", "-", "-o", "s.mmtok", "--chunk-bytes", "4096", "-q"],
                gzip.compress(data) if compress else data, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _tokens(mmtok.open(tmp_path / "s.mmtok")) == _tokens(reference)


def test_a_fifo_is_read_once(tmp_path, reference):
    fifo = tmp_path / "in.txt"
    os.mkfifo(fifo)

    def write():
        with open(fifo, "wb") as f:  # blocks until the build opens it: a second open would hang the test
            f.write(TEXT.encode())

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert resolve_source(str(fifo)).stream
    store = mmtok.build(str(fifo), tmp_path / "s.mmtok", chunk_bytes=4096)
    writer.join(timeout=30)
    assert _tokens(store) == _tokens(reference)
    assert store.manifest["inputs"][0]["stream"] is True


def test_process_substitution(tmp_path, reference):
    """`mmtok build <(cat a.txt)`: a /dev/fd/N pipe, whose first bytes must not be lost to sniffing."""
    (tmp_path / "a.txt").write_text(TEXT)
    done = subprocess.run(["bash", "-c", f"{sys.executable} -c '{CLI}' build <(cat a.txt) -o s.mmtok "
                                         "--chunk-bytes 4096 -q"], capture_output=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _tokens(mmtok.open(tmp_path / "s.mmtok")) == _tokens(reference)


def test_stdin_twice_is_refused_and_leaves_no_folder(tmp_path):
    done = _cli(["build", "-", "-", "-o", "s.mmtok"], b"hello\n", tmp_path)
    assert done.returncode == 1
    assert done.stderr.decode().strip() == ("Error: <stdin>: is a stream (pipe, FIFO or stdin) given twice; "
                                            "a stream can be read only once")
    assert os.listdir(tmp_path) == []


def test_empty_stdin_leaves_no_folder(tmp_path):
    done = _cli(["build", "-", "-o", "s.mmtok"], b"", tmp_path)
    assert done.returncode == 1 and b"is empty" in done.stderr and b"Traceback" not in done.stderr
    assert os.listdir(tmp_path) == []


def test_a_stream_cannot_resume_and_the_dataset_cache_refuses_it(tmp_path):
    from mmtok.inputs.sources import open_stream

    source = resolve_source("-")
    with pytest.raises(InputError, match="cannot be read again from a resume position"):
        open_stream(source, offset=10)
    with pytest.raises(InputError, match="no identity to key a stored dataset by"):
        mmtok.TokenDataset("-")


def test_a_stream_cannot_be_split_by_rank(tmp_path):
    done = _cli(["build", "-", "-o", "p.mmtok", "--rank", "0", "--world-size", "2"], TEXT.encode(), tmp_path)
    assert done.returncode == 1 and b"cannot be split by rank" in done.stderr and b"Traceback" not in done.stderr
