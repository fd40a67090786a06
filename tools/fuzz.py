"""Coverage-guided fuzzing (atheris) of every mmtok parser that takes outside bytes.

    python tools/fuzz.py TARGET --runs N        # TARGET: cache, manifest, csv, jsonl, txt, all

Each target writes the fuzzer's bytes to a file and hands it to the parser; the
parser must either accept it or raise one of mmtok's errors (``MmtokError``),
and its result must agree with a reference where one exists (Python's ``csv``
and ``json`` modules for CSV and JSONL, the decoded file for bulk text). Any
other exception, a disagreement, or a file left behind is a finding: atheris
stops and prints the input that caused it; turn it into a regression test in
``tests/test_fuzz_parsers.py``. Seeds (valid files of each kind) start the
search where the parsers do real work. Needs ``pip install atheris``.

The same checks (:func:`check`) run in the default test suite under hypothesis
(``tests/test_fuzz_parsers.py``), derandomized.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import shutil
import sys
import tempfile
import time

import msgpack
import numpy as np

TARGETS = ("cache", "manifest", "csv", "jsonl", "txt")


class Harness:
    """A scratch folder, a small valid store, and valid seed files of each kind."""

    def __init__(self, folder: str | None = None):
        import mmtok
        from mmtok.cache.export import export_store

        self.folder = folder or tempfile.mkdtemp(prefix="mmtok-fuzz-")
        self.store = mmtok.build(None, os.path.join(self.folder, "good.mmtok"),
                                 texts=[f"doc {i}: fuzz me, {i * 7}" for i in range(40)], shard_tokens=200)
        self.seeds = {target: [] for target in TARGETS}
        for codec in ("gzip", "zstd", "none"):
            path = os.path.join(self.folder, f"seed.{codec}")
            export_store(self.store, path, codec=codec, include_tokenizer=False)
            with open(path, "rb") as f:
                self.seeds["cache"].append(f.read())
        self.seeds["cache"] += [seed for seed in _CACHE_SEEDS if seed not in self.seeds["cache"]]
        with open(os.path.join(self.store.path, "manifest.json"), "rb") as f:
            self.manifest = f.read()
        self.seeds["manifest"].append(self.manifest)
        for target in ("csv", "jsonl", "txt"):
            self.seeds[target] += self.seed_bytes(target)

    @staticmethod
    def seed_bytes(target: str) -> list[bytes]:
        """Valid inputs of ``target`` to mutate (for cache and manifest: small stand-ins needing no store)."""
        return {
            "csv": [b'text\nhello\n"a, ""b""\nc"\n', b"a,b\r\n1,2\r\n", b'\xef\xbb\xbftext\n"x"'],
            "jsonl": [b'{"text": "a"}\n{"text": "b\\u00e9", "x": [1, {"y": null}]}\n', b'{"text":"\\ud83d\\ude00"}'],
            "txt": [b"Hello world.\nSecond line\r\n\xef\xbb\xbfnot a BOM here", b"a" * 300 + b"\n" + b"b c" * 50],
            "cache": _CACHE_SEEDS,
            "manifest": [],
        }[target] or _MANIFEST_SEEDS

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _npy(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


# Small valid caches: a real one is added by Harness (exported from its store; gzip's mtime makes it differ).
_CACHE_SEEDS = [gzip.compress(msgpack.packb(list(range(300))), mtime=0), msgpack.packb([5] * 20),
                _npy(np.arange(50, dtype="<u2")), gzip.compress(_npy(np.arange(9, dtype="<i8")), mtime=0)]
_MANIFEST_SEEDS = [b'{"format": "mmtok-store", "version": 1, "shards": [], "inputs": []}']


def _csv_reference(text: str) -> list[str]:
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    return [row[0] for row in rows[1:]]


def check(harness: Harness, target: str, data: bytes) -> str:
    """Run one input through ``target``'s parser; return "ok" or the error class; raise on a finding."""
    from mmtok.base.errors import MmtokError

    scratch = tempfile.mkdtemp(dir=harness.folder)
    try:
        return _CHECKS[target](harness, scratch, data)
    except MmtokError as exc:
        message = str(exc)
        if "\n" in message or "Traceback" in message:
            raise AssertionError(f"multi-line error message: {message!r}") from None
        return type(exc).__name__
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_cache(harness, scratch, data):
    from mmtok.cache.importer import import_cache

    path, out = os.path.join(scratch, "in.cache"), os.path.join(scratch, "out.mmtok")
    with open(path, "wb") as f:
        f.write(data)
    try:
        store, _ = import_cache(path, out)
    except BaseException:
        left = sorted(set(os.listdir(scratch)) - {"in.cache"})
        if left:
            raise AssertionError(f"a failed import left {left}") from None
        raise
    from mmtok.store.verify import verify_store

    verify_store(store.path)  # what an import accepts is a whole store
    return "ok"


def _check_manifest(harness, scratch, data):
    import mmtok

    folder = os.path.join(scratch, "s.mmtok")
    shutil.copytree(harness.store.path, folder)
    with open(os.path.join(folder, "manifest.json"), "wb") as f:
        f.write(data)
    store = mmtok.open(folder)
    len(store.shards)
    return "ok"


def _read(scratch, name, data, **options):
    from mmtok.inputs.readers import iter_chunks
    from mmtok.inputs.sources import resolve_source

    path = os.path.join(scratch, name)
    with open(path, "wb") as f:
        f.write(data)
    texts, ends = [], []
    for chunk in iter_chunks(resolve_source(path, **options), chunk_bytes=37):
        texts += chunk.texts
        ends += chunk.ends
    return texts, ends


def _check_csv(harness, scratch, data):
    texts, _ = _read(scratch, "in.csv", data, column=0)
    text = data.decode("utf-8")
    text = text[1:] if text.startswith("\ufeff") else text
    expected = _csv_reference(text)
    if texts != expected:
        raise AssertionError(f"CSV documents differ from Python's csv module: {texts!r} != {expected!r}")
    return "ok"


def _check_jsonl(harness, scratch, data):
    texts, _ = _read(scratch, "in.jsonl", data)
    text = data.decode("utf-8")
    text = text[1:] if text.startswith("\ufeff") else text
    expected = [json.loads(line)["text"] for line in text.split("\n") if line.strip()]
    if texts != expected:
        raise AssertionError(f"JSONL documents differ from json.loads: {texts!r} != {expected!r}")
    return "ok"


def _check_txt(harness, scratch, data):
    texts, ends = _read(scratch, "in.txt", data)
    text = data.decode("utf-8")
    text = text[1:] if text.startswith("\ufeff") else text
    if "".join(texts) != text or ends[-1] is not True or any(ends[:-1]):
        raise AssertionError("bulk pieces do not join into the decoded file")
    lines, _ = _read(scratch, "lines.txt", data, line_by_line=True)
    expected = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if lines != expected:
        raise AssertionError(f"line-by-line documents differ: {lines!r} != {expected!r}")
    return "ok"


_CHECKS = {"cache": _check_cache, "manifest": _check_manifest, "csv": _check_csv, "jsonl": _check_jsonl,
           "txt": _check_txt}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=(*TARGETS, "all"))
    parser.add_argument("--runs", type=int, default=10_000, help="executions per target (default 10,000)")
    parser.add_argument("--max-len", type=int, default=4096, help="longest input tried, in bytes")
    args, rest = parser.parse_known_args(argv)
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    targets = TARGETS if args.target == "all" else (args.target,)
    if len(targets) > 1:  # atheris runs one target per process
        for target in targets:
            status = os.spawnv(os.P_WAIT, sys.executable, [sys.executable, __file__, target, "--runs", str(args.runs),
                                                           "--max-len", str(args.max_len), *rest])
            if status:
                return status
        return 0
    target = targets[0]
    with atheris.instrument_imports(include=["mmtok"]):
        import mmtok.cache.importer  # noqa: F401  (the parsers, instrumented for coverage)
        import mmtok.cache.restore  # noqa: F401
        import mmtok.inputs.readers  # noqa: F401
        import mmtok.store.store  # noqa: F401
    harness = Harness()
    corpus = os.path.join(harness.folder, "corpus")
    os.makedirs(corpus)
    for i, seed in enumerate(harness.seeds[target]):
        with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
            f.write(seed)
    outcomes: dict[str, int] = {}
    started = time.monotonic()

    def report() -> None:
        print(f"fuzz {target}: {sum(outcomes.values()):,} executions in {time.monotonic() - started:.0f} s, "
              f"outcomes {dict(sorted(outcomes.items()))}, no finding", file=sys.stderr, flush=True)

    def one(data: bytes) -> None:
        try:
            outcome = check(harness, target, data)
        except BaseException:
            report()
            print(f"fuzz {target}: FINDING on input {data!r}", file=sys.stderr, flush=True)
            raise
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if sum(outcomes.values()) >= args.runs:  # libFuzzer exits from C: no atexit hook would run
            report()
            harness.close()

    atheris.Setup([sys.argv[0], f"-runs={args.runs}", f"-max_len={args.max_len}", *rest, corpus], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
