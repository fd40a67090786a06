"""Start-up time: `python -c "import mmtok"` and `mmtok --help` against bare Python and numpy, same run.

    python tools/bench_startup.py [--runs 21] [--workdir /tmp/mmtok-bench-startup]

Each command is a fresh process of this interpreter (sys.executable, not a
pyenv or venv shim), run --runs times, the candidates interleaved round-robin;
the wall time from spawn to exit is measured with time.perf_counter and the
median printed (min too: the least disturbed run). Every command runs with
PYTHONPATH set to this checkout, so `import mmtok` is this working tree's.

`mmtok --help` runs a console script written exactly as pip writes the
project's `mmtok` entry point (`from mmtok.cli import main; sys.exit(main())`)
with this interpreter, so the figure does not depend on whether or how mmtok is
installed; when an `mmtok` command is also on PATH, it is timed too.

Afterwards `python -X importtime` lists the heaviest imports of `import mmtok`
and of `mmtok --help` (one run each: where the time goes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from corpus import machine  # noqa: E402

TARGET = 0.3
ENTRY_POINT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from mmtok.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def timed(command: list[str], env: dict) -> float:
    begin = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - begin


def import_times(command: list[str], env: dict, top: int) -> list[tuple[float, str]]:
    """(cumulative seconds, module) of the heaviest imports of ``command`` (run with -X importtime)."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cumulative_us, name = line[len("import time:"):].split("|", 2)
            depth = (len(name) - len(name.lstrip()) - 1) // 2
            rows.append((int(cumulative_us) / 1e6, "  " * depth + name.strip()))
    rows.sort(key=lambda row: -row[0])
    return rows[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21, help="runs per command; medians are printed (default 21)")
    parser.add_argument("--top", type=int, default=12, help="heaviest imports listed (default 12)")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-startup")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    python = sys.executable
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    script = os.path.join(args.workdir, "mmtok")
    with open(script, "w") as f:
        f.write(ENTRY_POINT.format(python=python))
    os.chmod(script, 0o755)

    candidates = [
        ('python -c "pass"', [python, "-c", "pass"], None),
        ('python -c "import numpy"', [python, "-c", "import numpy"], None),
        ('python -c "import mmtok"', [python, "-c", "import mmtok"], TARGET),
        ("mmtok --help", [script, "--help"], TARGET),
    ]
    installed = shutil.which("mmtok")
    if installed and os.path.realpath(installed) != os.path.realpath(script):
        candidates.append(("mmtok --help (installed, on PATH)", [installed, "--help"], None))
    for _, command, _ in candidates:  # once each, untimed: warm the page cache and .pyc files
        timed(command, env)
    times = {label: [] for label, *_ in candidates}
    for _ in range(args.runs):
        for label, command, _ in candidates:
            times[label].append(timed(command, env))

    print(f"machine: {machine()}")
    print(f"python: {python}; mmtok --help runs the entry point written to {script}"
          + (f"; installed mmtok: {installed}" if installed else ""))
    print(f"{args.runs} runs per command, interleaved; wall time of the whole process\n")
    base = statistics.median(times['python -c "pass"'])
    print(f"{'command':34s} {'median s':>9s} {'min s':>7s} {'- pass':>7s}  target")
    for label, _, target in candidates:
        median = statistics.median(times[label])
        verdict = "" if target is None else f"< {target:g} s {'PASS' if median < target else 'FAIL'}"
        print(f"{label:34s} {median:9.3f} {min(times[label]):7.3f} {median - base:7.3f}  {verdict}")

    for label, command in (('python -c "import mmtok"', [python, "-X", "importtime", "-c", "import mmtok"]),
                           ("mmtok --help", [python, "-X", "importtime", script, "--help"])):
        rows = import_times(command, env, args.top)
        print(f"\nheaviest imports of {label} (cumulative, one run of -X importtime):")
        for seconds, name in rows:
            print(f"  {seconds * 1e3:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
