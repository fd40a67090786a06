"""Reading a store: a lazy, read-only snapshot of its manifest and memory-mapped shards."""

from __future__ import annotations

import os

import numpy as np

from ..base.constants import (
    DOCS_DTYPE,
    DOCS_SUFFIX,
    MANIFEST_FILE,
    SHARDS_DIR,
    STORE_MAX_TOKENIZER_BYTES,
    TOKENIZER_FILE,
    TOKENS_SUFFIX,
)
from ..base.errors import CorruptStoreError, StoreError
from ..remote.urls import is_remote
from .documents import Documents
from .manifest import parse_manifest, read_manifest
from .npyfile import open_npy
from .safefile import read_store_file
from .shardmaps import ShardMaps, shard_paths

__all__ = ["Store", "open_store", "shard_paths", "read_remote_manifest"]


class Store:
    """A snapshot of a store: the shards its manifest named when it was opened.

    Opening reads only the manifest; shards are mapped on first use. Stores are
    append-only, so a snapshot pickles as (path, shard count) and reopens to the
    same data in another process even if the store has grown since.
    """

    #: A store on object storage keeps at most this many shards memory-mapped (from its local
    #: cache, see mmtok/remote/cache.py), so evicted cache files are unmapped and freed.
    max_remote_maps = 4

    def __init__(self, path: str | os.PathLike, *, num_shards: int | None = None):
        self.path = os.fspath(path)
        self._remote = None
        if is_remote(self.path):
            from ..remote import RemoteFiles

            self._remote = RemoteFiles(self.path)
            manifest = read_remote_manifest(self._remote)
        else:
            manifest = read_manifest(self.path)
        if num_shards is not None:
            manifest = _truncate(manifest, num_shards, self.path)
        self.manifest = manifest
        self.shards = manifest["shards"]
        self.dtype = np.dtype(manifest["dtype"])
        self.eos_id: int = manifest["eos_id"]
        self.num_tokens: int = manifest["num_tokens"]
        self.num_documents: int = manifest["num_documents"]
        self.fingerprint: str = manifest["tokenizer"]["fingerprint"]
        self.vocab_size: int = manifest["tokenizer"]["vocab_size"]
        self.token_starts = np.zeros(len(self.shards) + 1, dtype=np.int64)
        np.cumsum([s["tokens"] for s in self.shards], out=self.token_starts[1:])
        self.doc_starts = np.zeros(len(self.shards) + 1, dtype=np.int64)
        np.cumsum([s["documents"] for s in self.shards], out=self.doc_starts[1:])
        self._maps = ShardMaps(self.path, self.shards, self.dtype, self.eos_id, self.token_starts,
                               opener=self._open_shard_file, on_unmap=self._forget_windows,
                               limit=self.max_remote_maps if self._remote is not None else None)
        self._window_views: dict[tuple[int, int], np.ndarray] = {}
        self._tokenizer = None
        self.tokens = TokenStream(self)
        self.documents = Documents(self)

    @property
    def remote(self):
        """The :class:`mmtok.remote.RemoteFiles` of a store on object storage; None for a local store."""
        return self._remote

    def __reduce__(self):
        return (Store, (self.path,), {"_snapshot": len(self.shards)})

    def __setstate__(self, state):
        # Called after __init__ ran with the current manifest; cut back to the pickled snapshot.
        if len(self.shards) != state["_snapshot"]:
            self.__init__(self.path, num_shards=state["_snapshot"])

    def __repr__(self) -> str:
        return (
            f"<mmtok.Store {self.path!r}: {self.num_tokens:,} tokens, {self.num_documents:,} documents, "
            f"{len(self.shards)} shards, {self.dtype.name}, tokenizer {self.manifest['tokenizer'].get('name', '?')}>"
        )

    @property
    def line_by_line(self) -> bool:
        """True when every input was read one document per line/row/record."""
        inputs = self.manifest["inputs"]
        return bool(inputs) and all(entry.get("line_by_line") for entry in inputs)

    @property
    def tokenizer(self):
        """The store's own tokenizer (from its embedded tokenizer.json), loaded on first use."""
        if self._tokenizer is None:
            from ..tokenize.tokenizer import tokenizer_from_json

            info = self.manifest["tokenizer"]
            file = self._file(TOKENIZER_FILE, info.get("file_sha256"))
            root = self.path if self._remote is None else os.path.dirname(file)  # a remote store's local cache
            try:
                text = read_store_file(root, file, limit=STORE_MAX_TOKENIZER_BYTES).decode("utf-8")
            except FileNotFoundError:
                raise CorruptStoreError(f"{file}: missing; the store cannot decode without its tokenizer "
                                        "(copy the tokenizer.json of the build, or rebuild)") from None
            except UnicodeDecodeError:
                raise CorruptStoreError(f"{file}: not UTF-8 text; the store is damaged (run `mmtok verify`)") from None
            tokenizer = tokenizer_from_json(text, eos_token=info.get("eos_token"), allow_special=info["allow_special"])
            if tokenizer.fingerprint != self.fingerprint:
                raise CorruptStoreError(
                    f"{self.path}/{TOKENIZER_FILE}: fingerprint {tokenizer.fingerprint} does not match the manifest's {self.fingerprint}"
                )
            self._tokenizer = tokenizer
        return self._tokenizer

    def hf_tokenizer(self, pad_id: int | None = None):
        """The store's tokenizer as a ``transformers.PreTrainedTokenizerFast`` (offline; eos set, pad = eos or ``pad_id``)."""
        from .hftokenizer import hf_tokenizer

        return hf_tokenizer(self, pad_id)

    def _file(self, relative: str, sha256: str | None) -> str:
        """The local path of a store file: in the store, or fetched into the cache for a remote store."""
        if self._remote is None:
            return os.path.join(self.path, relative)
        if sha256 is None:
            raise CorruptStoreError(f"{self.path}: the manifest gives no checksum for {relative}; cannot fetch it safely")
        return self._remote.local(relative, sha256)

    def _open_shard_file(self, i: int, kind: int) -> np.ndarray:
        shard = self.shards[i]
        suffix, key, dtype, length = ((TOKENS_SUFFIX, "tokens_sha256", self.dtype.str, shard["tokens"]),
                                      (DOCS_SUFFIX, "docs_sha256", DOCS_DTYPE, shard["documents"]))[kind]
        if self._remote is None:
            return open_npy(shard_paths(self.path, shard["name"])[kind], dtype=dtype, length=length, store=self.path)
        relative = f"{SHARDS_DIR}/{shard['name']}{suffix}"
        for _ in range(3):  # another process may evict the file between fetching and mapping it
            try:
                local = self._file(relative, shard[key])
                return open_npy(local, dtype=dtype, length=length, store=os.path.dirname(local))
            except FileNotFoundError:
                continue
            except CorruptStoreError as exc:
                if "missing" not in str(exc):
                    raise
        raise StoreError(f"{self.path}/{relative}: evicted from the cache as soon as fetched; the cache is too "
                         "small for the processes sharing it (raise MMTOK_REMOTE_CACHE_BYTES)")

    def _forget_windows(self, shard: int) -> None:
        """A shard was unmapped (a bounded number stay mapped): drop the window views that keep it mapped."""
        self._window_views = {k: v for k, v in self._window_views.items() if k[0] != shard}

    def shard_tokens(self, i: int) -> np.ndarray:
        return self._maps.tokens(i)

    def local_file(self, relative: str, sha256: str | None) -> str:
        """The local path of store file ``relative``: in the store, or fetched (checked) into the cache of a remote store."""
        return self._file(relative, sha256)

    def unchecked_doc_ends(self, i: int) -> np.ndarray:
        """Shard ``i``'s document ends as stored, not checked against its tokens: figures that need no
        tokens (``mmtok info`` on a remote store) read them without downloading token files."""
        return self._open_shard_file(i, 1)

    def shard_docs(self, i: int) -> np.ndarray:
        """Shard ``i``'s document ends, checked (increasing, in range, after an eos) when first mapped."""
        return self._maps.docs(i)

    def slice_tokens(self, start: int, stop: int) -> np.ndarray:
        """Tokens [start, stop) of the whole stream as a new array; bounds must already be valid."""
        if stop <= start:
            return np.empty(0, dtype=self.dtype)
        first = int(np.searchsorted(self.token_starts, start, side="right")) - 1
        base = int(self.token_starts[first])
        if stop <= int(self.token_starts[first + 1]):
            return np.array(self.shard_tokens(first)[start - base : stop - base])
        out = np.empty(stop - start, dtype=self.dtype)
        filled, shard = 0, first
        while filled < out.shape[0]:
            lo = start + filled - int(self.token_starts[shard])
            part = self.shard_tokens(shard)[lo : lo + out.shape[0] - filled]
            out[filled : filled + part.shape[0]] = part
            filled += part.shape[0]
            shard += 1
        return out

    def gather_windows(self, starts: np.ndarray, length: int, *, dtype=None) -> np.ndarray:
        """Rows ``tokens[s : s + length]`` for every s in ``starts`` (all in range), as one 2-D array.

        One vectorised gather per shard touched, cast to ``dtype`` (default: the
        store's) in the same pass; only windows that cross a shard boundary (rare:
        at most one per boundary and window) are copied piecewise.
        """
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if starts.shape[0] == 0 or length == 0:
            return np.empty((starts.shape[0], length), dtype=dtype)
        first = np.searchsorted(self.token_starts, starts, side="right") - 1
        last = np.searchsorted(self.token_starts, starts + (length - 1), side="right") - 1
        if (first == first[0]).all() and (last == first[0]).all():
            shard = int(first[0])  # the common case: every window inside one shard
            return self._windows(shard, length)[starts - self.token_starts[shard]].astype(dtype, copy=False)
        out = np.empty((starts.shape[0], length), dtype=dtype)
        inside = first == last
        # Group rows by shard once (a stable sort), then one gather per group.
        rows = np.flatnonzero(inside)
        rows = rows[np.argsort(first[rows], kind="stable")]
        shards, bounds = np.unique(first[rows], return_index=True)
        for shard, lo, hi in zip(shards.tolist(), bounds.tolist(), [*bounds[1:].tolist(), rows.shape[0]]):
            group = rows[lo:hi]
            out[group] = self._windows(shard, length)[starts[group] - self.token_starts[shard]]
        for row in np.flatnonzero(~inside).tolist():
            out[row] = self.slice_tokens(int(starts[row]), int(starts[row]) + length)
        return out

    def _windows(self, shard: int, length: int) -> np.ndarray:
        """A strided (no-copy) view of every ``length``-window of a shard, kept for reuse."""
        key = (shard, length)
        view = self._window_views.get(key)
        if view is None:
            view = np.lib.stride_tricks.sliding_window_view(self.shard_tokens(shard), length)
            if len(self._window_views) >= self._maps.limit:
                self._window_views.clear()  # each view keeps its shard mapped: stay within the bound of open maps
            self._window_views[key] = view
        return view

    def document_bounds(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offsets in the token stream of documents ``index`` (valid, non-negative), vectorised."""
        index = np.asarray(index, dtype=np.int64)
        ends = self._doc_ends(index)
        starts = np.zeros_like(ends)
        previous = index > 0
        starts[previous] = self._doc_ends(index[previous] - 1)
        return starts, ends

    def _doc_ends(self, index: np.ndarray) -> np.ndarray:
        shard_of = np.searchsorted(self.doc_starts, index, side="right") - 1
        out = np.empty(index.shape, dtype=np.int64)
        for shard in np.unique(shard_of):
            mask = shard_of == shard
            out[mask] = self.shard_docs(int(shard))[index[mask] - self.doc_starts[shard]]
        return out


def read_remote_manifest(remote) -> dict:
    """Load and check the manifest of a store on object storage (always fetched fresh: the commit point)."""
    data = remote.read_bytes(MANIFEST_FILE)
    where = f"{remote.url}/{MANIFEST_FILE}"
    if data is None:
        if not remote.bucket_exists():
            raise StoreError(f"{remote.url}: the bucket does not exist (or these credentials cannot see it)")
        raise StoreError(f"{remote.url}: not an mmtok store, {MANIFEST_FILE} is missing (not committed yet?)")
    return parse_manifest(data, where)


def _truncate(manifest: dict, num_shards: int, path: str) -> dict:
    shards = manifest["shards"]
    if num_shards > len(shards):
        raise CorruptStoreError(f"{path}: the snapshot had {num_shards} shards, the store now has {len(shards)}; was it rebuilt?")
    kept = dict(manifest, shards=shards[:num_shards])
    kept["num_tokens"] = sum(s["tokens"] for s in kept["shards"])
    kept["num_documents"] = sum(s["documents"] for s in kept["shards"])
    return kept


class TokenStream:
    """``store.tokens``: the whole token stream, sliceable across shards."""

    def __init__(self, store: Store):
        self._store = store

    def __len__(self) -> int:
        return self._store.num_tokens

    def __getitem__(self, key):
        n = self._store.num_tokens
        if isinstance(key, slice):
            picked = range(*key.indices(n))
            if not picked:
                return np.empty(0, dtype=self._store.dtype)
            lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
            span = self._store.slice_tokens(lo, hi)
            return span if picked.step == 1 else span[picked[0] - lo :: picked.step][: len(picked)]
        index = int(key)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"token index {key} out of range for {n} tokens")
        return self._store.slice_tokens(index, index + 1)[0]


def open_store(path: str | os.PathLike) -> Store:
    """Open the store at ``path`` lazily (exported as ``mmtok.open``)."""
    return Store(path)
