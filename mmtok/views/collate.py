"""Collating samples into training batches: padding, labels, masks, position ids, cu_seqlens.

The numpy work is :func:`collate`; :class:`Collator` wraps it for PyTorch
(a ``DataLoader`` ``collate_fn`` or a Hugging Face ``data_collator``), importing
torch only when it is called. ``mmtok.torch.Collator`` is this class.

Labels are the input ids with ``-100`` on padding only, decided by position
(each sample's length), never by value: eos stays a learned target even when
the pad id is the eos id, unlike collators that mask every token equal to pad.
"""

from __future__ import annotations

import numpy as np

from ..base.argcheck import as_int
from ..base.errors import InputError

__all__ = ["Collator", "collate", "IGNORE_INDEX"]

IGNORE_INDEX = -100  # what PyTorch's cross_entropy and Hugging Face models skip


def _as_array(value, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise InputError(f"{what} must be a 1-D sequence of integer ids, not {array.ndim}-D {array.dtype}")
    return array.astype(np.int64, copy=False)


def collate(samples, *, pad_id: int = 0, position_ids: bool = False, cu_seqlens: bool = False,
            whole_documents: bool = False, pad_to: int | None = None) -> dict:
    """Samples (arrays, lists, tensors, or dicts with ``input_ids``) as one padded batch of numpy arrays.

    Returns ``input_ids`` (padded on the right with ``pad_id``), ``labels``
    (``-100`` on padding; a sample's own ``labels`` are kept), ``attention_mask``
    (1 on tokens, 0 on padding), and on request ``position_ids`` (restarting at
    every document start, taken from each sample's ``position_ids``; a run of
    padding counts from 0 as a segment of its own) and ``cu_seqlens`` (int32
    offsets of every segment in the batch flattened row by row, padding runs
    included, so ``input_ids.view(-1)`` can go to a varlen attention kernel)
    with ``max_seqlen``. A sample without ``position_ids`` is one document only
    if ``whole_documents`` (line-by-line data, unpacked).
    """
    if not samples:
        raise InputError("cannot collate an empty list of samples")
    rows, given_labels, given_positions = [], [], []
    for n, sample in enumerate(samples):
        if isinstance(sample, dict):
            if "input_ids" not in sample:
                raise InputError(f"sample {n} is a dict without 'input_ids' (keys: {', '.join(map(str, sample))})")
            rows.append(_as_array(sample["input_ids"], f"sample {n}'s input_ids"))
            given_labels.append(None if sample.get("labels") is None else _as_array(sample["labels"], f"sample {n}'s labels"))
            given_positions.append(None if sample.get("position_ids") is None
                                   else _as_array(sample["position_ids"], f"sample {n}'s position_ids"))
        else:
            rows.append(_as_array(sample, f"sample {n}"))
            given_labels.append(None)
            given_positions.append(None)
    lengths = np.array([row.shape[0] for row in rows], dtype=np.int64)
    width = int(lengths.max())
    if pad_to is not None:
        if pad_to < width:
            raise InputError(f"a sample has {width} tokens, more than pad_to={pad_to}")
        width = pad_to
    columns = np.arange(width)
    mask = columns < lengths[:, None]
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    labels = np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64)
    for r, (row, own) in enumerate(zip(rows, given_labels)):
        input_ids[r, : row.shape[0]] = row
        if own is not None and own.shape[0] != row.shape[0]:
            raise InputError(f"sample {r} has {row.shape[0]} input_ids but {own.shape[0]} labels")
        labels[r, : row.shape[0]] = row if own is None else own
    batch = {"input_ids": input_ids, "labels": labels, "attention_mask": mask.astype(np.int64)}
    if position_ids or cu_seqlens:
        positions = np.empty((len(rows), width), dtype=np.int64)
        for r, (row, given) in enumerate(zip(rows, given_positions)):
            n = row.shape[0]
            if given is None:
                if not whole_documents:
                    raise InputError(f"sample {r} carries no document boundaries: make the dataset with "
                                     "output='dict', position_ids=True (bulk windows and packed rows), or pass "
                                     "samples with 'position_ids'")
                given = np.arange(n, dtype=np.int64)
            elif given.shape[0] != n:
                raise InputError(f"sample {r} has {n} input_ids but {given.shape[0]} position_ids")
            positions[r, :n] = given
            positions[r, n:] = np.arange(width - n)  # padding: a segment of its own
        if position_ids:
            batch["position_ids"] = positions
        if cu_seqlens:
            starts = np.flatnonzero(positions.reshape(-1) == 0)
            bounds = np.concatenate((starts, [positions.size])).astype(np.int32)
            batch["cu_seqlens"] = bounds
            batch["max_seqlen"] = int(np.diff(bounds).max(initial=0))
    return batch


class Collator:
    """Turns a list of samples into a dict of torch tensors; a ``DataLoader`` ``collate_fn`` or HF ``data_collator``.

    ``Collator(pad_id=None, position_ids=False, cu_seqlens=False)``: see
    :func:`collate` for what each option adds. ``pad_id=None`` pads with 0
    (``ds.collator()`` uses the dataset's pad id). The padding value never
    matters for the loss: labels and the attention mask come from each sample's
    length. ``pad_to_multiple_of`` rounds the padded width up (tensor cores).
    Pickles as its options, so it goes to DataLoader workers.
    """

    def __init__(self, pad_id: int | None = None, position_ids: bool = False, cu_seqlens: bool = False, *,
                 pad_to_multiple_of: int | None = None, whole_documents: bool = False):
        self.pad_id = 0 if pad_id is None else as_int("pad_id", pad_id)
        self.position_ids = bool(position_ids)
        self.cu_seqlens = bool(cu_seqlens)
        self.pad_to_multiple_of = None if pad_to_multiple_of is None else as_int("pad_to_multiple_of", pad_to_multiple_of)
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise InputError(f"pad_to_multiple_of must be at least 1, got {self.pad_to_multiple_of}")
        self.whole_documents = bool(whole_documents)

    def collate_numpy(self, samples) -> dict:
        """The batch as numpy arrays (what :meth:`__call__` turns into tensors)."""
        pad_to = None
        if self.pad_to_multiple_of:
            longest = max(_length(sample) for sample in samples) if samples else 0
            pad_to = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        return collate(list(samples), pad_id=self.pad_id, position_ids=self.position_ids, cu_seqlens=self.cu_seqlens,
                       whole_documents=self.whole_documents, pad_to=pad_to)

    def __call__(self, samples) -> dict:
        import torch

        batch = self.collate_numpy(samples)
        return {key: value if isinstance(value, int) else torch.from_numpy(value) for key, value in batch.items()}

    def __repr__(self) -> str:
        return (f"Collator(pad_id={self.pad_id}, position_ids={self.position_ids}, cu_seqlens={self.cu_seqlens}"
                f"{', whole_documents=True' if self.whole_documents else ''})")


def _length(sample) -> int:
    ids = sample["input_ids"] if isinstance(sample, dict) else sample
    return len(ids)


def sample_dict(ids: np.ndarray, positions: np.ndarray | None) -> dict:
    """One sample in the ``output="dict"`` format (numpy arrays; labels keep eos)."""
    out = {"input_ids": ids, "labels": ids.copy(), "attention_mask": np.ones(ids.shape[0], dtype=np.int64)}
    if positions is not None:
        out["position_ids"] = positions
    return out


def batch_dict(batch: np.ndarray, lengths: np.ndarray, positions: list | None) -> dict:
    """A padded 2-D batch in the ``output="dict"`` format: labels -100 and attention 0 on padding."""
    mask = np.arange(batch.shape[1]) < lengths[:, None]
    out = {"input_ids": batch, "labels": np.where(mask, batch, IGNORE_INDEX).astype(np.int64),
           "attention_mask": mask.astype(np.int64)}
    if positions is not None:
        pos = np.zeros(batch.shape, dtype=np.int64)
        for r, row in enumerate(positions):
            pos[r, : row.shape[0]] = row
            pos[r, row.shape[0] :] = np.arange(batch.shape[1] - row.shape[0])  # padding: a segment of its own
        out["position_ids"] = pos
    return out
