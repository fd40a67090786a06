"""Every dotted path the README and CHANGELOG show works after `import mmtok` alone, which stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

PATHS = [
    "mmtok.build", "mmtok.open", "mmtok.Store", "mmtok.TokenDataset", "mmtok.merge_datasets", "mmtok.blend",
    "mmtok.tokenize.load_tokenizer", "mmtok.views.list_stores", "mmtok.views.clean_stores",
    "mmtok.views.materialize", "mmtok.cache.export_store", "mmtok.cache.import_cache",
    "mmtok.order.TrainingOrder", "mmtok.store.verify_store", "mmtok.torch.Collator", "mmtok.Store.hf_tokenizer",
    "mmtok.TokenDataset.collator", "mmtok.TokenDataset.hf_tokenizer",
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


def test_training_paths_import_neither_torch_nor_transformers():
    """The collator and the training options of TokenDataset import torch only when a batch is made."""
    code = ("import sys, mmtok, mmtok.torch\n"
            "ds = mmtok.TokenDataset(texts=['a b', 'c'], store=sys.argv[1], output='dict', position_ids=True)\n"
            "sample, collator = ds[0], ds.collator(position_ids=True)\n"
            "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-c", code, folder + "/s.mmtok"], check=True, capture_output=True,
                             text=True).stdout.strip()
    assert out == ""
