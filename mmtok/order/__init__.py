"""The order layer: seeded permutations and the resumable, rank-sharded training order.

Owns :class:`Permutation` (a Feistel bijection over any size, O(1) memory)
and :class:`TrainingOrder` (a DataLoader ``sampler=`` with DistributedSampler
semantics). Pure arithmetic: may import only :mod:`mmtok.base`.
"""

from .permutation import Permutation
from .sampler import TrainingOrder

__all__ = ["Permutation", "TrainingOrder"]
