"""`mmtok info`, `mmtok verify`, `mmtok show`: looking inside a store."""

from __future__ import annotations

import json

import click


def print_info(info: dict) -> None:
    tok = info["tokenizer"]
    lines = [
        f"store       {info['path']} ({info['format']})",
        f"tokens      {info['tokens']:,} ({info['dtype']}, eos {info['eos_id']})",
        f"documents   {info['documents']:,} ({'line by line' if info['line_by_line'] else 'bulk'})",
        f"tokenizer   {tok['name']}, vocab {tok['vocab_size']:,}, {tok['fingerprint'][:23]}…",
        f"shards      {info['shards']}, {info['bytes'] / 1e6:,.1f} MB on disk",
    ]
    stats = info["document_length"]
    if stats["count"]:
        lines.append(
            f"doc length  min {stats['min']:,}  median {stats['median']:,.0f}  mean {stats['mean']:,.1f}  "
            f"p90 {stats['p90']:,.0f}  p99 {stats['p99']:,.0f}  max {stats['max']:,}"
        )
    for entry in info["inputs"]:
        lines.append(f"input       {entry['path']}: {entry['tokens']:,} tokens, {entry['documents']:,} documents")
    if info["interrupted_build"]:
        lines.append("note        an interrupted build is pending: rerun it to resume")
    click.echo("\n".join(lines))


@click.command("info")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def info_command(store, as_json):
    """Show what STORE holds: tokens, documents, tokenizer, shards, document lengths."""
    from ..stats import store_info
    from ..store import Store

    info = store_info(Store(store))
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        print_info(info)


@click.command("verify")
@click.argument("store")
def verify_command(store):
    """Prove STORE whole: checksums, offsets, id ranges, eos at every document end."""
    from ..verify import verify_store

    report = verify_store(store)
    click.echo(f"{store}: OK ({report['shards']} shards, {report['tokens']:,} tokens, {report['documents']:,} documents)")
    if report["leftovers"]:
        click.echo(f"note: {len(report['leftovers'])} files of an interrupted build are not part of the store: "
                   "rerun the build to resume or clean them", err=True)


@click.command("show")
@click.argument("store")
@click.option("--doc", "doc", type=int, required=True, help="Document index (negative counts from the end).")
@click.option("--ids", is_flag=True, help="Print token ids instead of text.")
def show_command(store, doc, ids):
    """Decode a document of STORE back to text."""
    from ..errors import StoreError
    from ..store import Store

    opened = Store(store)
    try:
        tokens = opened.documents[doc]
    except IndexError:
        raise StoreError(f"{store}: no document {doc}; the store has {opened.num_documents:,} (0 to {opened.num_documents - 1})") from None
    if ids:
        click.echo(" ".join(map(str, tokens.tolist())))
    else:
        body = tokens[:-1] if tokens.shape[0] and tokens[-1] == opened.eos_id else tokens
        click.echo(opened.tokenizer.decode(body))


COMMANDS = [info_command, verify_command, show_command]
