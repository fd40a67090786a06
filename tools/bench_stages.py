"""CPU seconds of each stage of a bulk build, each stage alone on one thread, against the engine's own.

```
python tools/bench_stages.py [--megabytes 100] [--tokenizer llama3-style.json] [--workdir /tmp/mmtok-bench-stages]
python tools/bench_stages.py --csv rows.csv [--runs 5]  # line by line: a one-column CSV (bench_engines.py --parts rows
                                                        # writes one), each stage's median CPU of --runs runs
python tools/bench_stages.py --jsonl rows.jsonl         # line by line: JSON lines ({"text": ...}; bench_engines.py writes one)
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
import io
import os
import sys
import time

os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from corpus import machine, make_text_file  # noqa: E402


class _Replay:
    """A tokenizer whose encode_flat returns a result computed before: encode_chunk's own work, timed alone."""

    def __init__(self, tok, result):
        self.dtype, self.eos_id, self._result = tok.dtype, tok.eos_id, result

    def encode_flat(self, texts):
        return self._result


def _timed(rows: list, name: str, function, *args, runs: int = 1):
    """Run ``function(*args)`` ``runs`` times; record the median CPU seconds, return the last result."""
    seconds = []
    for _ in range(max(1, runs)):
        start = time.thread_time()
        result = function(*args)
        seconds.append(time.thread_time() - start)
    rows.append((name, sorted(seconds)[len(seconds) // 2]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument("--tokenizer", default=None, help="a tokenizer.json (default: the bundled GPT-2)")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-stages")
    parser.add_argument("--csv", default=None, help="time the stages of a one-column CSV instead (header row first)")
    parser.add_argument("--runs", type=int, default=1, help="--csv: each stage's median CPU of this many runs")
    parser.add_argument("--jsonl", default=None, help="time the stages of a JSON-lines file instead (field 'text')")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    if args.csv:
        return csv_stages(args)
    if args.jsonl:
        return jsonl_stages(args)
    text_path = os.path.join(args.workdir, f"text-{args.megabytes:g}mb.txt")
    if not os.path.exists(text_path):
        make_text_file(text_path, args.megabytes)

    from mmtok.inputs.lines import count_newlines
    from mmtok.store.npyfile import own_file_sha256
    from mmtok.store.pipeline import encode_chunk
    from mmtok.tokenize.cutpoints import iter_pieces, sub_cuts
    from mmtok.tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else load_tokenizer()
    rules = tok.cut_rules
    rows: list = []

    # Each stage is timed over every piece, dropping its output as the build does (memory is reused; keeping
    # 100 MB of fresh results would add page faults the build does not pay); its inputs are made untimed.
    def each(function, items):
        for item in items:
            function(item)

    def read_all():
        with open(text_path, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass

    _timed(rows, "read (1 MiB reads)", read_all)
    with open(text_path, "rb") as f:
        data = f.read()
    _timed(rows, "cut search (iter_pieces, in memory)",
           lambda: each(len, iter_pieces(io.BytesIO(data).read, chunk_bytes=1 << 20, rules=rules)))
    pieces = [p for p, _ in iter_pieces(io.BytesIO(data).read, chunk_bytes=1 << 20, rules=rules)]
    _timed(rows, "sub_cuts", lambda: each(lambda p: sub_cuts(p, rules), pieces))
    bounds = [[0, *sub_cuts(p, rules), len(p)] for p in pieces]

    def decode(item):
        piece, cuts = item
        with memoryview(piece) as view:
            return [str(view[s:e], "utf-8") for s, e in zip(cuts, cuts[1:])]

    _timed(rows, "UTF-8 decode of sub-pieces", lambda: each(decode, zip(pieces, bounds)))
    _timed(rows, "count lines (numpy)", lambda: each(count_newlines, pieces))
    texts = [decode(item) for item in zip(pieces, bounds)]
    _timed(rows, "ENGINE: encode_flat (one call per piece)", lambda: each(tok.encode_flat, texts))
    encoded = [tok.encode_flat(t) for t in texts]
    _timed(rows, "cast to the store dtype (encode_chunk without the engine)",
           lambda: each(lambda et: encode_chunk(_Replay(tok, et[0]), et[1], [False] * len(et[1])), zip(encoded, texts)))
    arrays = [encode_chunk(_Replay(tok, e), t, [False] * len(t))[0] for e, t in zip(encoded, texts)]
    out = os.path.join(args.workdir, "stage.tokens")

    def write():
        with open(out, "wb") as f:
            for tokens in arrays:
                f.write(memoryview(tokens).cast("B"))
            f.flush()
            os.fsync(f.fileno())

    _timed(rows, "write tokens (+fsync)", write)
    _timed(rows, "sha256 of the tokens file (own_file_sha256)", own_file_sha256, out)
    os.unlink(out)

    engine = dict(rows)["ENGINE: encode_flat (one call per piece)"]
    rest = sum(seconds for name, seconds in rows if not name.startswith("ENGINE"))
    print(f"# {machine()}; {len(data) / 1e6:.1f} MB, {len(pieces)} pieces, "
          f"{sum(map(len, texts))} sub-pieces, engine {tok.engine}, load {os.getloadavg()[0]:.1f}")
    print(f"| stage (one thread) | CPU s | per engine CPU |\n| --- | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / engine:.3f} |")
    print(f"| everything but the engine | {rest:.3f} | {rest / engine:.3f} |")


def csv_stages(args) -> None:
    """The line-by-line path: the bulk CSV parse (main thread), the engine, the eos placement (pool threads)."""
    from mmtok.inputs.csvfast import parse_block
    from mmtok.inputs.lines import MAX_LINE_BYTES
    from mmtok.tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else load_tokenizer()
    rows: list = []
    runs = max(1, args.runs)

    def read():
        with open(args.csv, "rb") as f:
            return f.read()

    data = _timed(rows, "read the file", read, runs=runs)
    blocks, pos = [], data.index(b"\n") + 1  # after the header
    while pos < len(data):  # the reader's blocks: 1 MiB completed to a line end
        stop = data.find(b"\n", pos + (1 << 20))
        stop = len(data) if stop < 0 else stop + 1
        blocks.append((data[pos:stop], stop == len(data)))
        pos = stop

    def parse():
        out = []
        for block, last in blocks:
            parsed = parse_block(block, at_eof=last, field_limit=1 << 30, line_limit=MAX_LINE_BYTES)
            if parsed is None or parsed[1] != len(block):
                raise SystemExit("this CSV is not strictly shaped: the bulk parse declines it")
            out.append(parsed[0])
        return out

    chunks = _timed(rows, "parse_block (numpy passes + the strs)", parse, runs=runs)
    joined = [("\0".join(texts)).encode("utf-8") for texts in chunks]
    _timed(rows, "  of which the floor: decode + split into one str per row",
           lambda: [block.decode("utf-8").split("\0") for block in joined], runs=runs)
    _engine_stages(rows, tok, chunks, f"{len(data) / 1e6:.1f} MB", "rows", runs)


def _engine_stages(rows: list, tok, chunks: list, size: str, what: str, runs: int) -> None:
    """Time the stages after parsing (ends list, engine, eos and cast) and print every stage's table."""
    from mmtok.store.pipeline import encode_chunk

    _timed(rows, "the reader's ends list ([True] * rows)", lambda: [[True] * len(texts) for texts in chunks], runs=runs)
    encoded = _timed(rows, "ENGINE: encode_flat (one call per chunk)", lambda: [tok.encode_flat(t) for t in chunks],
                     runs=runs)
    _timed(rows, "eos placement and cast (encode_chunk without the engine)",
           lambda: [encode_chunk(_Replay(tok, e), t, [True] * len(t)) for e, t in zip(encoded, chunks)], runs=runs)
    engine = dict(rows)["ENGINE: encode_flat (one call per chunk)"]
    print(f"# {machine()}; {size}, {sum(map(len, chunks)):,} {what} in {len(chunks)} chunks, "
          f"engine {tok.engine}, load {os.getloadavg()[0]:.1f}, median CPU of {runs} run(s)")
    print("| stage (one thread) | CPU s | per engine CPU |\n| --- | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / engine:.3f} |")


def jsonl_stages(args) -> None:
    """JSON lines: the reader's blocks decoded, the bulk parse (and the line-by-line one it replaces), the engine."""
    from mmtok.inputs.jsonlfast import BlockParser
    from mmtok.inputs.jsonlreader import reference_texts
    from mmtok.tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else load_tokenizer()
    rows: list = []
    with open(args.jsonl, "rb") as f:
        data = _timed(rows, "read the file", f.read)
    blocks, pos = [], 0
    while pos < len(data):  # the reader's blocks (inputs/lines.py): 1 MiB completed to a line end
        stop = data.find(b"\n", pos + (1 << 20))
        stop = len(data) if stop < 0 else stop + 1
        blocks.append(data[pos:stop])
        pos = stop

    # Like the build, each stage drops a block's output before the next (keeping 20 MB of fresh strings
    # alive would add page faults the build does not pay); the inputs of a stage are made untimed.
    def each(function, items):
        for item in items:
            function(item)

    _timed(rows, "UTF-8 decode of the blocks", lambda: each(bytes.decode, blocks))
    texts = [block.decode("utf-8") for block in blocks]
    _timed(rows, "  the floor: split into one str per line", lambda: each(lambda text: text.split("\n"), texts))
    parser = BlockParser("text")
    _timed(rows, "BlockParser.texts (bulk parse)", lambda: each(parser.texts, texts))
    _timed(rows, "(before: reference_texts, line by line)",
           lambda: each(lambda text: reference_texts(text, 1, "text", args.jsonl), texts))
    chunks = [parser.texts(text) for text in texts]
    if any(chunk is None for chunk in chunks):
        print("# some blocks were declined by the bulk parse: they are read line by line", file=sys.stderr)
    chunks = [chunk if chunk is not None else reference_texts(text, 1, "text", args.jsonl)
              for chunk, text in zip(chunks, texts)]
    if chunks != [reference_texts(text, 1, "text", args.jsonl) for text in texts]:
        raise SystemExit("the bulk parse and the line-by-line one differ: a bug")
    _engine_stages(rows, tok, chunks, f"{len(data) / 1e6:.1f} MB", "lines", 1)


if __name__ == "__main__":
    main()
