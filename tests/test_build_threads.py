"""The build's threads: a reading thread ahead of the encoders, and decoding on the encoders.

Speed is measured in tools/ (bench_engines.py); here only what must hold: the
same chunks and bytes as reading on one thread, errors raised in order and
naming the line, threads that end, a caller's iterable read on its own thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest

import mmtok
from mmtok.base.errors import InputError
from mmtok.inputs.readers import iter_chunks
from mmtok.inputs.sources import resolve_source
from mmtok.store.pipeline import prefetched


def _reading_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "mmtok-read"]


def test_prefetched_yields_in_order_then_raises_the_producers_error_after_the_items_before_it():
    def items():
        yield from range(50)
        raise ValueError("the 51st item is bad")

    seen = []
    with pytest.raises(ValueError, match="51st"):
        for item in prefetched(items(), depth=2):
            seen.append(item)
    assert seen == list(range(50))
    time.sleep(0.05)
    assert not _reading_threads()


def test_closing_prefetched_stops_the_producer_and_closes_its_generator():
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    reader = prefetched(endless(), depth=2)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()
    assert closed.wait(5), "the producer's generator was not closed"
    for thread in _reading_threads():
        thread.join(5)
    assert not _reading_threads()


def test_lazy_bulk_chunks_equal_the_eager_ones(tmp_path, docs_prose):
    path = tmp_path / "prose.txt"
    path.write_text(docs_prose[:300_000], encoding="utf-8")
    source = resolve_source(path)
    eager = list(iter_chunks(source, chunk_bytes=20_000))
    lazy = list(iter_chunks(source, chunk_bytes=20_000, lazy=True))
    assert len(eager) == len(lazy) > 5
    assert all(chunk.texts is None for chunk in lazy)
    for a, b in zip(eager, lazy):
        assert (a.texts, a.ends) == b.decoded()
        assert (a.position, a.nbytes) == (b.position, b.nbytes)


@pytest.mark.parametrize("workers", [1, 3])
def test_invalid_utf8_deep_in_a_threaded_build_names_its_line_and_leaves_no_store(tmp_path, docs_prose, workers):
    data = docs_prose.encode()[:400_000]
    bad = data.index(b"\n", len(data) * 3 // 4) + 1
    data = data[:bad] + b"caf\xe9\n" + data[bad:]
    path = tmp_path / "latin1.txt"
    path.write_bytes(data)
    store = tmp_path / "s.mmtok"
    line = data[:bad].count(b"\n") + 1
    with pytest.raises(InputError, match=rf"latin1.txt:{line}: invalid UTF-8"):
        mmtok.build(str(path), str(store), chunk_bytes=10_000, workers=workers)
    assert not store.exists()
    time.sleep(0.05)
    assert not _reading_threads()


def test_threaded_builds_write_the_same_bytes_as_one_thread(tmp_path, docs_prose):
    path = tmp_path / "prose.txt"
    path.write_text(docs_prose[:400_000], encoding="utf-8")
    stores = [mmtok.build(str(path), str(tmp_path / f"w{w}.mmtok"), chunk_bytes=15_000, shard_tokens=20_000,
                          workers=w) for w in (1, 2, 4)]
    assert len(stores[0].shards) > 2
    for other in stores[1:]:
        for i in range(len(stores[0].shards)):
            assert np.array_equal(stores[0].shard_tokens(i), other.shard_tokens(i))
        first, second = (s.path for s in (stores[0], other))
        assert [p.read_bytes() for p in sorted((tmp_path / first).glob("shards/*"))] == \
               [p.read_bytes() for p in sorted((tmp_path / second).glob("shards/*"))]


def test_a_callers_iterable_of_texts_is_read_on_the_callers_thread(tmp_path, docs_prose):
    # sqlite3 refuses to be used from any thread but its own: a reading thread would fail here
    connection = sqlite3.connect(":memory:")
    connection.execute("create table docs (body text)")
    connection.executemany("insert into docs values (?)", [(line,) for line in docs_prose.split("\n")[:3000] if line])
    rows = (body for (body,) in connection.execute("select body from docs"))
    store = mmtok.build(path=str(tmp_path / "db.mmtok"), texts=rows, workers=2, chunk_bytes=4096)
    assert store.num_documents == connection.execute("select count(*) from docs").fetchone()[0]
