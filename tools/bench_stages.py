"""CPU seconds of each stage of a bulk build, each stage alone on one thread, against the engine's own.

```
python tools/bench_stages.py [--megabytes 100] [--tokenizer llama3-style.json] [--workdir /tmp/mmtok-bench-stages]
```

The same text as tools/bench_engines.py (`corpus.py`). Every stage runs alone
on one thread over the whole text, timed with ``time.thread_time`` (CPU, not
wall), and is printed as seconds and as a share of the engine's CPU
(``encode_batch_flat`` of the same sub-pieces, 16 per call as the raw peer).
On two saturated cores the build's wall ratio to the raw engine is bounded by
engine / (engine + everything else), so the table says how much of the gap is
left to each stage.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import time

os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from corpus import machine, make_text_file  # noqa: E402


def _timed(rows: list, name: str, function, *args):
    start = time.thread_time()
    result = function(*args)
    rows.append((name, time.thread_time() - start))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument("--tokenizer", default=None, help="a tokenizer.json (default: the bundled GPT-2)")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-stages")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    text_path = os.path.join(args.workdir, f"text-{args.megabytes:g}mb.txt")
    if not os.path.exists(text_path):
        make_text_file(text_path, args.megabytes)

    from mmtok.inputs.lines import count_newlines
    from mmtok.tokenize.cutpoints import iter_pieces, sub_cuts
    from mmtok.tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else load_tokenizer()
    rules = tok.cut_rules
    rows: list = []

    def read_all():
        with open(text_path, "rb", buffering=0) as f:
            return [block for block in iter(lambda: f.read(1 << 20), b"")]

    _timed(rows, "read (1 MiB reads)", read_all)
    with open(text_path, "rb") as f:
        data = f.read()
    pieces = _timed(rows, "cut search (iter_pieces, in memory)",
                    lambda: [p for p, _ in iter_pieces(io.BytesIO(data).read, chunk_bytes=1 << 20, rules=rules)])
    bounds = _timed(rows, "sub_cuts", lambda: [[0, *sub_cuts(p, rules), len(p)] for p in pieces])

    def decode():
        out = []
        for piece, b in zip(pieces, bounds):
            with memoryview(piece) as view:
                out.append([str(view[s:e], "utf-8") for s, e in zip(b, b[1:])])
        return out

    texts = _timed(rows, "UTF-8 decode of sub-pieces", decode)
    _timed(rows, "count lines (numpy)", lambda: [count_newlines(p) for p in pieces])
    encoded = _timed(rows, "ENGINE: encode_flat (one call per piece)", lambda: [tok.encode_flat(t) for t in texts])

    arrays = _timed(rows, "per-chunk numpy (astype dtype)",
                    lambda: [(ids.astype(tok.dtype, copy=False), None) for ids, _ in encoded])
    out = os.path.join(args.workdir, "stage.tokens")

    def write():
        with open(out, "wb") as f:
            for tokens, _ in arrays:
                f.write(memoryview(tokens).cast("B"))
            f.flush()
            os.fsync(f.fileno())

    _timed(rows, "write tokens (+fsync)", write)

    def sha():
        digest = hashlib.sha256()
        with open(out, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        return digest.hexdigest()

    _timed(rows, "sha256 of the tokens file", sha)
    os.unlink(out)

    engine = dict(rows)["ENGINE: encode_flat (one call per piece)"]
    rest = sum(seconds for name, seconds in rows if not name.startswith("ENGINE"))
    print(f"# {machine()}; {len(data) / 1e6:.1f} MB, {len(pieces)} pieces, "
          f"{sum(map(len, texts))} sub-pieces, engine {tok.engine}, load {os.getloadavg()[0]:.1f}")
    print(f"| stage (one thread) | CPU s | per engine CPU |\n| --- | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / engine:.3f} |")
    print(f"| everything but the engine | {rest:.3f} | {rest / engine:.3f} |")


if __name__ == "__main__":
    main()
