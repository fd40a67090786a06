"""Peak memory of a build does not grow with the input: build 100 MB and 1 GB of real text.

    python tools/bench_build_memory.py [--sizes 100,1000] [--workdir /tmp/mmtok-mem]

Each build runs in its own subprocess; its peak RSS (ru_maxrss) is reported with
the throughput. The input files are generated once in --workdir and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus import machine, make_text_file  # noqa: E402

CHILD = """
import json, resource, sys, time, mmtok
t = time.perf_counter()
store = mmtok.build(sys.argv[1], sys.argv[2])
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "tokens": store.num_tokens,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000", help="input sizes in MB, comma-separated")
    parser.add_argument("--workdir", default="/tmp/mmtok-mem")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"{'input':>10} {'seconds':>8} {'MB/s':>7} {'Mtok/s':>7} {'peak RSS':>10}")
    for size in (float(s) for s in args.sizes.split(",")):
        text = os.path.join(args.workdir, f"text-{size:g}MB.txt")
        nbytes = make_text_file(text, size)
        out = os.path.join(args.workdir, f"store-{size:g}MB")
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run([sys.executable, "-c", CHILD, text, out], capture_output=True, text=True, check=True)
        result = json.loads(done.stdout)
        shutil.rmtree(out, ignore_errors=True)
        print(f"{nbytes / 1e6:>8.0f}MB {result['seconds']:>8.1f} {nbytes / 1e6 / result['seconds']:>7.1f} "
              f"{result['tokens'] / 1e6 / result['seconds']:>7.2f} {result['peak_rss_mb']:>8.0f}MB")


if __name__ == "__main__":
    main()
