"""`mmtok merge`: merge or blend stores into a new store."""

from __future__ import annotations

import math
import sys
import time

import click


def _weights(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        weights = [float(part) for part in value.split(",")]
    except ValueError:
        weights = []
    if not all(math.isfinite(w) and w > 0 for w in weights) or not weights:
        raise click.BadParameter(f"{value!r}: expected positive numbers separated by commas, e.g. 0.7,0.3",
                                 param_hint="--weights")
    return weights


@click.command("merge")
@click.argument("stores", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Store folder to create (must not exist yet).")
@click.option("--no-equalize", is_flag=True, help="Take every sample of every store (default: as many from each "
              "store as the smallest has, sampled at random).")
@click.option("--seed", type=int, default=None, help="Seed of the random selection (default: fresh; printed).")
@click.option("--weights", default=None, help="w1,w2,...: blend by tokens in these proportions instead of merging.")
@click.option("--num-samples", type=click.IntRange(min=0), default=None,
              help="With --weights: samples in the blend (default: until a store would repeat).")
@click.option("--block-size", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Tokens per sample: the window of bulk stores, the cut of documents.")
@click.option("--shard-tokens", type=click.IntRange(min=1), default=None,
              help="Close a shard after about this many tokens.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def merge_command(stores, output, no_equalize, seed, weights, num_samples, block_size, shard_tokens, quiet):
    """Merge the samples of STORES (or blend them with --weights) into the new store OUTPUT.

    Each store is viewed as TokenDataset.open(STORE, block_size=...) would (line
    by line or bulk, as it was built). Every sample becomes one document of
    OUTPUT (a window gains an eos), so TokenDataset.open(OUTPUT,
    block_size=...) reads back the merged samples in order.
    """
    from ..base.constants import DEFAULT_SHARD_TOKENS
    from ..views.blending import blend
    from ..views.dataset import TokenDataset
    from ..views.materialize import materialize
    from ..views.merge import merge_datasets

    weights = _weights(weights)
    if weights is not None and no_equalize:
        raise click.UsageError("--no-equalize applies to merging; a blend (--weights) takes its proportions "
                               "from the weights")
    if weights is not None and len(weights) != len(stores):
        raise click.BadParameter(f"{len(stores)} stores but {len(weights)} weights: give one weight per store",
                                 param_hint="--weights")
    if weights is None and num_samples is not None:
        raise click.UsageError("--num-samples sets the length of a blend: give --weights too")
    datasets = [TokenDataset.open(path, block_size=block_size) for path in stores]
    _check_stores(stores, datasets, blending=weights is not None, equalize=not no_equalize)
    if weights is None:
        view = merge_datasets(datasets, equalize=not no_equalize, seed=seed)
        what = f"merge of {len(stores)} stores ({'all samples' if no_equalize else f'equalized, seed {view.seed}'})"
    else:
        view = blend(datasets, weights, num_samples=num_samples, seed=seed)
        what = f"blend of {len(stores)} stores by tokens (seed {view.seed})"
    started = time.monotonic()
    # A bar only on a terminal: in logs and pipes the summary line says it all.
    show = not quiet and sys.stderr.isatty()
    with click.progressbar(length=len(view), label="merging", file=sys.stderr if show else _Null()) as bar:
        store = materialize(view, output, shard_tokens=shard_tokens or DEFAULT_SHARD_TOKENS,
                            progress=lambda done, total: bar.update(done - bar.pos))
    seconds = max(time.monotonic() - started, 1e-9)
    if not quiet:
        click.echo(f"{output}: {len(view):,} samples, {what}; {store.num_tokens:,} tokens in "
                   f"{len(store.shards)} shard{'s' if len(store.shards) != 1 else ''}, {seconds:.1f} s ({store.num_tokens / seconds / 1e6:.1f} M tokens/s)")
        from .viewtree import view_tree

        click.echo("\n".join(view_tree(store.manifest["inputs"][0]["view"])))
        click.echo(f"read it with TokenDataset.open({output!r}, block_size={block_size})")


def _check_stores(paths, datasets, *, blending: bool, equalize: bool) -> None:
    """The Python API's checks, said in the command line's words (store paths and options, not datasets[i])."""
    from ..base.errors import StoreError, TokenizerMismatchError

    first = datasets[0].store
    for path, ds in zip(paths, datasets):
        store = ds.store
        if (store.fingerprint, store.eos_id, store.manifest["tokenizer"]["allow_special"]) != \
                (first.fingerprint, first.eos_id, first.manifest["tokenizer"]["allow_special"]):
            raise TokenizerMismatchError(
                f"{path} was made with tokenizer {store.manifest['tokenizer'].get('name')} ({store.fingerprint}, eos "
                f"{store.eos_id}) and {paths[0]} with {first.manifest['tokenizer'].get('name')} ({first.fingerprint}, "
                f"eos {first.eos_id}): the same ids mean different text; rebuild one with the other's tokenizer "
                "(mmtok build ... --tokenizer ...)")
        if len(ds) == 0 and (blending or equalize):
            fix = "leave it out" if blending else "leave it out, or pass --no-equalize"
            raise StoreError(f"{path} has no samples at --block-size {ds.block_size}, so it cannot give its share; {fix}")


class _Null:
    """A file that swallows the progress bar (quiet, or not a terminal)."""

    def write(self, _text) -> None:
        pass

    def flush(self) -> None:
        pass


COMMANDS = [merge_command]
