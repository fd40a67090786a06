"""`mmtok info`, `mmtok verify`, `mmtok show`: looking inside a store."""

from __future__ import annotations

import json

import click

from ..base.progress import counted


def print_info(info: dict) -> None:
    tok = info["tokenizer"]
    lines = [
        f"store       {info['path']} ({info['format']})",
        f"tokens      {info['tokens']:,} ({info['dtype']}, eos {info['eos_id']})",
        f"documents   {info['documents']:,} ({'line by line' if info['line_by_line'] else 'bulk'})",
        f"tokenizer   {tok['name']}, vocab {tok['vocab_size']:,}, {tok['fingerprint'][:23]}…",
        *([f"engine      {info['engine']} (the last build's encoder; ids are the same with any)"] if info.get("engine") else []),
        f"shards      {info['shards']}, {info['bytes'] / 1e6:,.1f} MB {'in object storage' if '://' in info['path'] else 'on disk'}",
    ]
    stats = info["document_length"]
    if stats["count"]:
        lines.append(
            f"doc length  min {stats['min']:,}  median {stats['median']:,.0f}  mean {stats['mean']:,.1f}  "
            f"p90 {stats['p90']:,.0f}  p99 {stats['p99']:,.0f}  max {stats['max']:,}"
        )
    for entry in info["inputs"]:
        lines.append(f"input       {entry['path']}: {counted(entry['tokens'], 'token')}, {counted(entry['documents'], 'document')}")
        if entry.get("view"):
            from .viewtree import view_tree

            lines += ["  " + line for line in view_tree(entry["view"])]
    if info["interrupted_build"]:
        lines.append("note        an interrupted build is pending: rerun it to resume")
    click.echo("\n".join(lines))


@click.command("info")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def info_command(store, as_json):
    """Show what STORE holds: tokens, documents, tokenizer, shards, document lengths."""
    from ..store.stats import store_info
    from ..store.store import Store

    info = store_info(Store(store))
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        print_info(info)


@click.command("verify")
@click.argument("store")
def verify_command(store):
    """Prove STORE whole: checksums, offsets, id ranges, eos at every document end."""
    from ..store.verify import check_store

    report = check_store(store)
    if report["problems"]:
        for problem in report["problems"]:
            click.echo(problem, err=True)
        click.echo(f"{store}: DAMAGED ({counted(len(report['problems']), 'problem')}; a store of "
                   f"{counted(report['shards'], 'shard')}); readers may refuse it or return wrong data", err=True)
        raise SystemExit(1)
    click.echo(f"{store}: OK ({counted(report['shards'], 'shard')}, {counted(report['tokens'], 'token')}, {counted(report['documents'], 'document')})")
    if report["leftovers"]:
        click.echo(f"note: {len(report['leftovers'])} files of an interrupted build are not part of the store: "
                   "rerun the build to resume or clean them", err=True)


@click.command("show")
@click.argument("store")
@click.option("--doc", "doc", type=int, default=None, help="Document index (negative counts from the end).")
@click.option("--sample", "sample", type=int, default=None,
              help="Sample index of the TokenDataset view (negative counts from the end); needs --block-size.")
@click.option("--block-size", type=click.IntRange(min=1), default=None, help="With --sample: tokens per sample.")
@click.option("--stride", type=click.IntRange(min=1), default=None,
              help="With --sample on a bulk store: tokens between sample starts (default: the block size).")
@click.option("--ids", is_flag=True, help="Print token ids instead of text.")
def show_command(store, doc, sample, block_size, stride, ids):
    """Decode a document, or a sample of the TokenDataset view, of STORE back to text."""
    from ..base.errors import StoreError
    from ..store.store import Store

    if (doc is None) == (sample is None):
        raise click.UsageError("give exactly one of --doc I or --sample I")
    if sample is None and (block_size is not None or stride is not None):
        raise click.UsageError("--block-size and --stride go with --sample")
    if sample is not None and block_size is None:
        raise click.UsageError("--sample needs --block-size N (the model's context length)")
    opened = Store(store)
    if sample is not None:
        tokens = _sample_tokens(opened, sample, block_size, stride)
        # A sample is shown exactly as a model sees it, eos tokens included.
        click.echo(" ".join(map(str, tokens.tolist())) if ids else opened.tokenizer.decode(tokens))
        return
    try:
        tokens = opened.documents[doc]
    except IndexError:
        raise StoreError(f"{store}: no document {doc}; the store has {opened.num_documents:,} (0 to {opened.num_documents - 1})") from None
    if ids:
        click.echo(" ".join(map(str, tokens.tolist())))
    else:
        body = tokens[:-1] if tokens.shape[0] and tokens[-1] == opened.eos_id else tokens
        click.echo(opened.tokenizer.decode(body))


def _sample_tokens(store, sample: int, block_size: int, stride):
    from ..base.errors import StoreError
    from ..views.dataset import TokenDataset

    if stride is not None and store.line_by_line:
        raise click.UsageError("--stride applies to bulk stores; in this line-by-line store, sample I is document I "
                               "cut to --block-size")
    dataset = TokenDataset.open(store, block_size=block_size, stride=stride, dtype=store.dtype)
    try:
        return dataset[sample]
    except IndexError:
        mode = "line by line" if dataset.line_by_line else f"block size {block_size}, stride {dataset.stride}"
        raise StoreError(f"{store.path}: no sample {sample}; viewed {mode}, the store has {len(dataset):,} samples "
                         f"(0 to {len(dataset) - 1})") from None


@click.command("stores")
@click.option("--clean", is_flag=True, help="Delete the listed stores.")
@click.option("--stale", is_flag=True, help="Only stores whose input changed or is gone.")
def stores_command(clean, stale):
    """List (or --clean) the stores TokenDataset keeps in the cache folder ($MMTOK_CACHE_DIR)."""
    from ..views.storecache import cache_dir, clean_stores, leftovers, list_stores

    if clean:
        removed = clean_stores(stale_only=stale)
        stores = sum(path.endswith(".mmtok") for path in removed)
        extra = f" and {counted(len(removed) - stores, 'leftover')}" if len(removed) > stores else ""
        click.echo(f"removed {counted(stores, 'store')}{extra} from {cache_dir()}")
        return
    entries = [entry for entry in list_stores() if entry.stale or not stale]
    for entry in entries:
        state = "stale" if entry.stale else "complete" if entry.complete else "interrupted"
        click.echo(f"{entry.bytes / 1e6:10,.1f} MB  {state:<11} {entry.path}  <- {', '.join(entry.inputs)}")
    total = _disk_bytes([entry.path for entry in entries])
    for path in leftovers():
        click.echo(f"{'':>10}     leftover    {path}  (of a killed import or failed run; `mmtok stores --clean` removes it)")
    click.echo(f"{counted(len(entries), 'store')}, {total / 1e6:,.1f} MB on disk in {cache_dir()}"
               + (" (tokenizer files shared between stores counted once)" if len(entries) > 1 else ""))


def _disk_bytes(folders) -> int:
    """Bytes of every file under ``folders``, a file hard-linked from several stores counted once."""
    import os

    seen, total = set(), 0
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                stat = os.stat(os.path.join(root, name))
                if (stat.st_dev, stat.st_ino) not in seen:
                    seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_size
    return total


COMMANDS = [info_command, verify_command, show_command, stores_command]
