"""Ray integration (``pip install 'mmtok[ray]'``): partitioned builds as Ray tasks, and a Ray Data sink.

:func:`build` splits the inputs (:mod:`mmtok.inputs.split`), runs
:func:`mmtok.build_partition` for each split as a Ray task and commits;
:class:`Datasink` ends a Ray Data pipeline in a store
(``ds.write_datasink(mmtok.ray.Datasink("corpus.mmtok", column="text"))``).
Importing this layer imports Ray (``Datasink`` subclasses Ray's); ``import
mmtok`` does not import it. May import every layer below.
"""

from .build import build
from .datasink import Datasink

__all__ = ["build", "Datasink"]
