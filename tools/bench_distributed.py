"""Past one machine, on one machine: what partitioned builds and object storage cost.

Measured in one run on the same input and the same cores (medians of --runs):

- build: `mmtok build --workers N` (the single-machine build) against N `mmtok build --rank R
  --world-size N --workers 1` processes at once plus `mmtok commit`, and against
  `mmtok.ray.build(num_partitions=N)` on a local Ray instance (`ray.init(num_cpus=N)`,
  timed after init; the init time is printed apart);
- read: every token of a store read through `mmtok.open`, local files (page cache warm) against
  `s3://` on a local moto server, cold (download, verify, map) and warm (from the local cache).

Every path builds the same token stream (checked). Usage:
`python tools/bench_distributed.py [--mb 20] [--runs 3] [--no-ray] [--no-s3]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus import machine, make_text_file

import mmtok

MMTOK = [sys.executable, "-m", "mmtok"]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def single(path, out, workers):
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([*MMTOK, "build", path, "-o", out, "-q", "--workers", str(workers)], check=True)


def ranks(path, out, world):
    shutil.rmtree(out, ignore_errors=True)
    procs = [subprocess.Popen([*MMTOK, "build", path, "-o", out, "-q", "--workers", "1", "--rank", str(r),
                               "--world-size", str(world)]) for r in range(world)]
    if [p.wait() for p in procs] != [0] * world:
        raise SystemExit("a rank failed")
    subprocess.run([*MMTOK, "commit", out, "--expect", str(world), "-q"], check=True)


def same_stream(a, b) -> None:
    if not np.array_equal(mmtok.open(a).tokens[:], mmtok.open(b).tokens[:]):
        raise SystemExit(f"{a} and {b} differ")


def bench_build(args, work, text, size):
    cores = args.cores
    results = {"inproc": [], "single": [], "ranks": [], "ray": []}
    shutil.rmtree(os.path.join(work, "inproc.mmtok"), ignore_errors=True)  # an earlier run's, maybe of another size
    mmtok.build([text], os.path.join(work, "inproc.mmtok"), workers=cores)  # loads the tokenizer once
    ray_init = None
    if not args.no_ray:
        for name, value in (("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"), ("RAY_USAGE_STATS_ENABLED", "0"),
                            ("RAY_AUTH_MODE", "disabled")):
            os.environ.setdefault(name, value)
        import ray

        from mmtok.ray import build as ray_build

        ray_init = timed(lambda: ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False))
        shutil.rmtree(os.path.join(work, "warm.mmtok"), ignore_errors=True)
        ray_build([text], os.path.join(work, "warm.mmtok"), num_partitions=cores)  # start the workers
    for _ in range(args.runs):  # interleaved, so load changes hit every candidate
        out = os.path.join(work, "inproc.mmtok")
        shutil.rmtree(out, ignore_errors=True)
        results["inproc"].append(timed(lambda: mmtok.build([text], out, workers=cores)))
        results["single"].append(timed(lambda: single(text, os.path.join(work, "single.mmtok"), cores)))
        results["ranks"].append(timed(lambda: ranks(text, os.path.join(work, "ranks.mmtok"), cores)))
        if not args.no_ray:
            out = os.path.join(work, "ray.mmtok")
            shutil.rmtree(out, ignore_errors=True)
            results["ray"].append(timed(lambda: ray_build([text], out, num_partitions=cores)))
    same_stream(os.path.join(work, "single.mmtok"), os.path.join(work, "ranks.mmtok"))
    if not args.no_ray:
        same_stream(os.path.join(work, "single.mmtok"), os.path.join(work, "ray.mmtok"))
    base = statistics.median(results["inproc"])
    print(f"\nbuild of {size / 1e6:.1f} MB of text on {cores} cores (median of {args.runs}):")
    for name, label in (("inproc", f"mmtok.build(workers={cores}), in this process"),
                        ("single", f"mmtok build --workers {cores} (a new process)"),
                        ("ranks", f"{cores} x mmtok build --rank --workers 1, + commit"),
                        ("ray", f"mmtok.ray.build(num_partitions={cores})")):
        if results[name]:
            t = statistics.median(results[name])
            print(f"  {label:48s} {t:7.2f} s  {size / t / 1e6:6.2f} MB/s  {t / base:5.2f}x the in-process build's time"
                  f"  (runs: {', '.join(f'{x:.2f}' for x in results[name])})")
    if ray_init is not None:
        print(f"  (ray.init(num_cpus={cores}) took {ray_init:.1f} s, not counted above)")
        import ray

        ray.shutdown()


def bench_read(args, work):
    import logging

    from moto.server import ThreadedMotoServer

    from mmtok.remote import FileCache, filesystem, upload_folder

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    local = os.path.join(work, "single.mmtok")
    fs, _ = filesystem("s3://bench")
    fs.mkdir("bench")
    upload_folder(local, "s3://bench/store.mmtok", last=("manifest.json",))
    nbytes = sum(os.path.getsize(os.path.join(local, "shards", n)) for n in os.listdir(os.path.join(local, "shards"))
                 if n.endswith(".tokens.npy"))

    def read_all(url):
        store = mmtok.open(url)
        total = 0
        for i in range(len(store.shards)):
            total += int(store.shard_tokens(i)[::4096].sum()) + int(np.asarray(store.shard_tokens(i)).sum() & 1)
        return total

    times = {"local": [], "s3 cold": [], "s3 warm": []}
    for run in range(args.runs):
        cache = os.path.join(work, f"cache-{run}")
        shutil.rmtree(cache, ignore_errors=True)  # cold means cold: nothing left from an earlier run of this tool
        os.environ["MMTOK_REMOTE_CACHE"] = cache
        times["local"].append(timed(lambda: read_all(local)))
        times["s3 cold"].append(timed(lambda: read_all("s3://bench/store.mmtok")))
        times["s3 warm"].append(timed(lambda: read_all("s3://bench/store.mmtok")))
        if FileCache(cache).total_bytes() < nbytes:
            raise SystemExit("the cache did not hold the store")
    server.stop()
    base = statistics.median(times["local"])
    print(f"\nreading every token of a {nbytes / 1e6:.1f} MB store (median of {args.runs}; moto on 127.0.0.1):")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:10s} {t:7.3f} s  {nbytes / t / 1e6:8.1f} MB/s  {t / base:6.1f}x local's time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mmtok-bench-distributed"))
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    print(f"machine: {machine()}; Python {sys.version.split()[0]}; mmtok {mmtok.__version__}")
    text = os.path.join(args.workdir, f"text-{args.mb:g}MB.txt")
    size = make_text_file(text, args.mb)
    bench_build(args, args.workdir, text, size)
    if not args.no_s3:
        bench_read(args, args.workdir)


if __name__ == "__main__":
    main()
