"""The PyTorch integration layer: :class:`Collator` for ``DataLoader`` and Hugging Face ``Trainer``.

The class lives in :mod:`mmtok.views.collate` (so that ``TokenDataset.collator()``
can return one without importing upward) and imports torch only when a batch is
collated; this module is its public name, ``mmtok.torch.Collator``.
"""

from ..views.collate import IGNORE_INDEX, Collator, collate

__all__ = ["Collator", "collate", "IGNORE_INDEX"]
