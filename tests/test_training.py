"""A tiny GPT-2 (2 layers, random init, CPU) learns from TokenDatasets through mmtok's collator alone."""

from __future__ import annotations

import numpy as np
import pytest

import mmtok
from mmtok import TokenDataset

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MMTOK_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is shared: no oversubscription
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rows_store(tmp_path_factory, docs_prose):
    rows = [p for p in docs_prose.split("\n\n") if p.strip()][:64]
    return mmtok.build(None, tmp_path_factory.mktemp("rows") / "s.mmtok", texts=rows)


def tiny_gpt2(vocab_size: int):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    return transformers.GPT2LMHeadModel(config)


def decreased(losses: list[float]) -> bool:
    return np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.5


@pytest.mark.train
def test_hf_trainer_with_mmtok_collator(rows_store, tmp_path):
    pytest.importorskip("accelerate")  # Trainer needs it
    ds = TokenDataset.open(rows_store.path, block_size=32)  # bare numpy samples of different lengths
    tokenizer = ds.hf_tokenizer()
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=12, learning_rate=1e-2,
                                          per_device_train_batch_size=4, logging_steps=1, report_to=[],
                                          save_strategy="no", use_cpu=True, dataloader_num_workers=0, seed=0)
    trainer = transformers.Trainer(model=tiny_gpt2(rows_store.vocab_size), args=args, train_dataset=ds,
                                   data_collator=ds.collator(), processing_class=tokenizer)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 12 and decreased(losses), losses


@pytest.mark.parametrize("kind", ["bulk", "lines", "packed"])
def test_plain_loop_with_dataloader_workers(rows_store, kind):
    from torch.utils.data import DataLoader

    options = {"bulk": {"line_by_line": False, "output": "dict", "position_ids": True}, "lines": {},
               "packed": {"packing": "bfd", "output": "dict", "position_ids": True}}[kind]
    ds = TokenDataset.open(rows_store.path, block_size=32, **options)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=ds.collator(position_ids=True),
                        sampler=ds.sampler(seed=0), persistent_workers=True)
    model = tiny_gpt2(rows_store.vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    while len(losses) < 12:
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            if len(losses) == 12:
                break
    assert decreased(losses), losses


def test_hf_tokenizer_is_the_stores_own(rows_store):
    ds = TokenDataset.open(rows_store.path, block_size=32)
    for tokenizer in (ds.hf_tokenizer(), rows_store.hf_tokenizer()):
        assert isinstance(tokenizer, transformers.PreTrainedTokenizerFast)
        assert tokenizer.eos_token_id == rows_store.eos_id and tokenizer.pad_token_id == ds.pad_id
        assert tokenizer("Hello world")["input_ids"] == [15496, 995]
        assert tokenizer.decode(rows_store.documents[2]) == rows_store.tokenizer.decode(rows_store.documents[2])
    assert TokenDataset.open(rows_store.path, pad_id=0).hf_tokenizer().pad_token_id == 0


@pytest.mark.lightning
def test_lightning_datamodule(rows_store):
    lightning = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader

    class Data(lightning.LightningDataModule):
        def train_dataloader(self):
            ds = TokenDataset.open(rows_store.path, block_size=32, packing="bfd", output="dict", position_ids=True)
            return DataLoader(ds, batch_size=4, collate_fn=ds.collator(position_ids=True),
                              sampler=ds.sampler(seed=0))

    class Model(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.model, self.losses = tiny_gpt2(rows_store.vocab_size), []

        def training_step(self, batch, _):
            loss = self.model(**batch).loss
            self.losses.append(loss.item())
            return loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-2)

    model = Model()
    trainer = lightning.Trainer(max_steps=12, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=Data())
    assert len(model.losses) == 12 and decreased(model.losses), model.losses
