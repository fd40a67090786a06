"""Candidates of tools/bench_engines.py, run one per fresh process by tools/peers.py (``python tools/peers.py NAME``).

- ``fastokens``: raw fastokens on the same ~64 KB chunks as the tiktoken peer,
  ``encode_batch_flat`` of 16 chunks per call on a pool of one thread per core
  (``FASTOKENS_BPE_THREADS=1``: its own pool off; the GIL is released).
- ``engine-raw``: a given tokenizer.json, raw, with the engine mmtok proves
  identical for it: fastokens as above, or ``tokenizers.encode_batch`` of 256
  chunks per call (Rayon, all cores).
- ``mmtok-tok``: ``mmtok.build`` of a file with a given tokenizer.json.
- ``store-floor``: the work any store of the tokens needs, with nothing kept
  in order and nothing serial: each thread reads a ~1 MiB piece of the file
  (cut after a newline, untimed), decodes it, encodes it (as pieces of
  ~64 KB, one call), casts the ids to
  the store's dtype, hashes them with sha256 and appends them to a file of
  its own, fsynced at the end. A lower bound on any build's time with this
  engine on this machine.
- ``rows-floor``: the same for a CSV or JSONL file of rows: each thread
  reads a ~1 MiB block of whole lines (no quoted line breaks in these files),
  parses it (``csv.reader``; msgspec's ``decode_lines``, which does not
  prove a record is a line), encodes the rows joined by eos
  (:mod:`mmtok.tokenize.joined`), casts, hashes and writes.
- ``rows-engine``: the rows of a one-column CSV (read untimed with ``csv``;
  or of a ``.jsonl`` file's ``text`` fields, read untimed with ``json``)
  through the engine's batch API, 10,000 rows per call (on the pool for
  fastokens): the ceiling of a line-by-line build.
"""

from __future__ import annotations

import os

os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")

from peers import _chunks, _Timed, cores, newline_bounds, newline_pieces, tree_bytes  # noqa: E402

CALL_CHUNKS = 16
CALL_ROWS = 10_000


def _load(tokenizer_json: str | None):
    from mmtok.tokenize.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer_json) if tokenizer_json else load_tokenizer()


def _pool_fastokens(native, batches) -> int:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(cores()) as pool:
        return sum(len(ids) // 4 for ids, _ in pool.map(lambda batch: native.encode_batch_flat(batch), batches))


def _encode_raw(tok, texts: list[str], per_call: int) -> int:
    batches = [texts[i : i + per_call] for i in range(0, len(texts), per_call)]
    if tok.engine == "fastokens":
        return _pool_fastokens(tok._fast.native, batches)
    if tok.engine == "tiktoken":
        return sum(sum(map(len, tok._fast.encoding.encode_ordinary_batch(b, num_threads=cores()))) for b in batches)
    return sum(sum(len(e.ids) for e in tok.backend.encode_batch(b, add_special_tokens=False)) for b in batches)


def run_engine_raw(input: str, tokenizer_json: str | None = None, **_) -> dict:
    with _Timed() as setup:
        tok = _load(tokenizer_json)
    chunks = _chunks(input)
    with _Timed() as work:
        tokens = _encode_raw(tok, chunks, CALL_CHUNKS if tok.engine == "fastokens" else 256)
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": tokens, "engine": tok.engine}


def run_fastokens(input: str, **_) -> dict:
    return run_engine_raw(input, None)


def run_mmtok_tok(input: str, output: str, tokenizer_json: str | None = None, **options) -> dict:
    import mmtok

    with _Timed() as setup:
        tok = _load(tokenizer_json)
        _ = tok.cut_rules  # probes run once per tokenizer, on first use: setup, like loading it
        tok.encode_documents(["", ""])
    with _Timed() as work:
        store = mmtok.build(input, output, tokenizer=tok, **options)
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": store.num_tokens, "output_bytes": tree_bytes(output), "engine": tok.engine,
            "documents": store.num_documents}


def _piece_bounds(path: str, size: int = 1 << 20) -> list[int]:
    """Byte offsets of pieces of about ``size`` bytes of ``path`` (:func:`peers.newline_bounds`)."""
    with open(path, "rb") as f:
        return newline_bounds(f.read(), size)


def _floor(input: str, output: str, bounds: list[int], tokens_of, *, hash: bool = True, write: bool = True):
    """Run ``tokens_of(i, data) -> (tokens, count)`` on every piece of ``input`` on a pool of all cores.

    Each result is hashed with sha256 and appended to its thread's own file,
    fsynced at the end (``hash``/``write`` False leave a step out).  Returns
    the work's timer and the sum of the counts.
    """
    import hashlib
    import threading
    from concurrent.futures import ThreadPoolExecutor

    os.makedirs(output, exist_ok=True)
    local, outputs = threading.local(), []

    def piece(i: int) -> int:
        if not hasattr(local, "fd"):
            local.fd = os.open(os.path.join(output, f"{threading.get_ident()}.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            outputs.append(local.fd)
        tokens, count = tokens_of(i, os.pread(source, bounds[i + 1] - bounds[i], bounds[i]))
        if hash:
            hashlib.sha256(tokens).digest()
        if write:
            os.write(local.fd, tokens)
        return count

    with _Timed() as work:
        source = os.open(input, os.O_RDONLY)
        with ThreadPoolExecutor(cores()) as pool:
            total = sum(pool.map(piece, range(len(bounds) - 1)))
        for fd in outputs:
            os.fsync(fd)
            os.close(fd)
        os.close(source)
    return work, total


def run_store_floor(input: str, output: str, tokenizer_json: str | None = None, skip: str = "", **_) -> dict:
    """``skip``: steps left out ("hash", "write", "cast"), to price each."""
    with _Timed() as setup:
        tok = _load(tokenizer_json)
        bounds = _piece_bounds(input)

    def tokens_of(i: int, data: bytes):
        tokens = tok.encode_flat(newline_pieces(data.decode("utf-8")))[0]  # 64 KiB: the engine's fastest call
        tokens = tokens if "cast" in skip else tokens.astype(tok.dtype)
        return tokens, tokens.shape[0]

    work, tokens = _floor(input, output, bounds, tokens_of, hash="hash" not in skip, write="write" not in skip)
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": tokens, "engine": tok.engine}


def run_rows_floor(input: str, output: str, tokenizer_json: str | None = None, **_) -> dict:
    """The work any store of a rows file needs, fully parallel: see ``rows-floor`` in the module notes."""
    import csv
    import io
    import operator

    import msgspec

    with _Timed() as setup:
        tok = _load(tokenizer_json)
        joiner = tok._joined
        bounds = _piece_bounds(input)
        record = msgspec.json.Decoder(msgspec.defstruct("Record", [("text", str)], gc=False))
        text_of = operator.attrgetter("text")

    def tokens_of(i: int, data: bytes):
        if input.endswith(".jsonl"):  # decode_lines reads a stream of values: no proof that a record is a line
            rows = list(map(text_of, record.decode_lines(data)))
        else:
            rows = [row[0] for row in csv.reader(io.StringIO(data.decode("utf-8"), newline="")) if row]
            rows = rows[1:] if i == 0 else rows
        return joiner._encode(rows)[0].astype(tok.dtype), len(rows)

    work, documents = _floor(input, output, bounds, tokens_of)
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "engine": tok.engine, "documents": documents}


def run_rows_engine(input: str, tokenizer_json: str | None = None, **_) -> dict:
    import csv
    import json

    with _Timed() as setup:
        tok = _load(tokenizer_json)
        with open(input, encoding="utf-8", newline="") as f:
            if input.endswith(".jsonl"):
                rows = [json.loads(line)["text"] for line in f if line.strip()]
            else:
                rows = [row[0] for row in list(csv.reader(f))[1:] if row]
    with _Timed() as work:
        tokens = _encode_raw(tok, rows, CALL_ROWS)
    return {"seconds": work.seconds, "cpu_seconds": work.cpu_seconds, "setup_seconds": setup.seconds,
            "tokens": tokens, "engine": tok.engine, "documents": len(rows)}


CANDIDATES = {"fastokens": run_fastokens, "engine-raw": run_engine_raw, "mmtok-tok": run_mmtok_tok,
              "rows-engine": run_rows_engine, "store-floor": run_store_floor, "rows-floor": run_rows_floor}
