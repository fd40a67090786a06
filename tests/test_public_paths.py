"""Every dotted path the README and CHANGELOG show works after `import mmtok` alone, which stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

PATHS = [
    "mmtok.build", "mmtok.open", "mmtok.Store", "mmtok.TokenDataset", "mmtok.merge_datasets", "mmtok.blend",
    "mmtok.tokenize.load_tokenizer", "mmtok.views.list_stores", "mmtok.views.clean_stores",
    "mmtok.views.materialize", "mmtok.cache.export_store", "mmtok.cache.import_cache",
    "mmtok.order.TrainingOrder", "mmtok.store.verify_store",
    # the module paths of 0.1.0, kept working
    "mmtok.tokenizer.load_tokenizer", "mmtok.storecache.list_stores", "mmtok.storecache.clean_stores",
    "mmtok.materialize.materialize", "mmtok.exchange.export_store", "mmtok.sampler.TrainingOrder",
]


@pytest.mark.parametrize("path", PATHS)
def test_path_works_after_import_mmtok_alone(path):
    code = f"import mmtok\nobj = {path}\nassert callable(obj), obj\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_mmtok_loads_numpy_only():
    code = ("import sys, mmtok\n"
            "heavy = [m for m in ('torch', 'transformers', 'tokenizers', 'tiktoken', 'zstandard', 'msgpack', 'click',"
            " 'pyarrow', 'datasets', 'ray', 'fsspec') if m in sys.modules]\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == ""


def test_unknown_attribute_is_an_attribute_error():
    import mmtok

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        mmtok.nonexistent  # noqa: B018
