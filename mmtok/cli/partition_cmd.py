"""`mmtok commit`: join the partitions of a partitioned build (``mmtok build --rank/--world-size``)."""

from __future__ import annotations

import click

from ..base.progress import counted


@click.command("commit")
@click.argument("store")
@click.option("--expect", type=click.IntRange(min=1), default=None,
              help="How many partitions there must be (the --world-size of the builds): 0 .. N-1.")
@click.option("--allow-missing", is_flag=True,
              help="Commit the finished partitions even if some are missing or unfinished (they are listed).")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def commit_command(store, expect, allow_missing, quiet):
    """Join the finished partitions under STORE into one store (no tokens copied).

    Refuses while a partition is missing or unfinished (a rank still running,
    or crashed) and names it; rerun that rank, or pass --allow-missing.
    """
    from ..store.commit import commit

    result = commit(store, expect=expect, allow_missing=allow_missing)
    build = result.manifest.get("build", {})
    missing = build.get("missing_partitions") or []
    if missing:
        click.echo(f"warning: committed without partition(s) {', '.join(map(str, missing))} (--allow-missing)", err=True)
    if not quiet:
        parts = len(build.get("partitions", []))
        click.echo(f"{store}: committed {counted(parts, 'partition')}: {counted(result.num_tokens, 'token')}, "
                   f"{counted(result.num_documents, 'document')}, {counted(len(result.shards), 'shard')} "
                   f"({result.dtype.name})")


COMMANDS = [commit_command]
