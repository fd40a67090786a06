"""`mmtok build` and `mmtok demo`."""

from __future__ import annotations

import os

import click

from ..base.progress import counted


CLI_SPELLING = {"column": "--column", "field": "--field", "header": "--no-header", "bulk": "--bulk",
                "csv_field_limit": "--csv-field-limit"}


def _column(value: str | None):
    return int(value) if value is not None and value.isdigit() else value


def run_build(inputs, output, *, quiet: bool, rank: int | None = None, world_size: int | None = None, **options):
    """Build with a progress bar on a terminal; return the store."""
    from ..base.progress import BuildProgress
    from ..inputs.options import check_options_apply
    from ..inputs.sources import resolve_source
    from ..store.build import build

    reading = {name: options.pop(name) for name in ("line_by_line", "column", "field", "header")}
    reading["csv_field_limit"] = options.pop("csv_field_limit", None)
    sources = [resolve_source(path, **{**reading, "field": reading["field"] or "text"}) for path in inputs]
    check_options_apply(sources, column=reading["column"], field=reading["field"], header=reading["header"],
                        bulk=reading["line_by_line"] is False, csv_field_limit=reading["csv_field_limit"],
                        spelling=CLI_SPELLING)
    again = options.pop("again", False)
    if rank is not None:
        return _run_partition(sources, output, rank, world_size, quiet=quiet, **options)
    progress = BuildProgress([s.size for s in sources], enabled=False if quiet else None)
    notes = []
    try:
        store = build(sources, output, progress=progress, on_note=notes.append, again=again, **options)
    finally:
        progress.close()
    for note in notes:
        click.echo(note, err=True)  # said even with --quiet: nothing was appended
    if not quiet:
        if progress.tokens or not notes:
            engine = store.manifest.get("build", {}).get("engine")
            done = progress.summary() + (f", engine {engine}" if engine else "")
            click.echo(done if progress.tokens else "nothing new to tokenize", err=True)
        click.echo(f"{output}: {counted(store.num_tokens, 'token')}, {counted(store.num_documents, 'document')}, "
                   f"{counted(len(store.shards), 'shard')} ({store.dtype.name})")
    return store


def _run_partition(sources, output, rank: int, world_size: int, *, quiet: bool, **options):
    """``--rank R --world-size W``: build partition R of the W deterministic splits of the inputs."""
    from ..base.progress import BuildProgress
    from ..inputs.split import split_sources
    from ..store.partition import build_partition
    from ..tokenize.tokenizer import load_tokenizer

    tok = options["tokenizer"] = load_tokenizer(options.get("tokenizer"))
    part = split_sources(sources, world_size, cut_rules=tok.cut_rules)[rank]
    progress = _SpanProgress(part, BuildProgress([_span_size(s) for s in part], enabled=False if quiet else None))
    try:
        result = build_partition(part, output, rank, progress=progress, **options)
    finally:
        progress.close()
    if not quiet:
        if progress.tokens:
            click.echo(progress.summary(), err=True)
        click.echo(f"{output}: partition {rank} of {world_size}: {counted(result['tokens'], 'token')}, "
                   f"{counted(result['documents'], 'finished document')}; when every rank is done: "
                   f"mmtok commit {output} --expect {world_size}")
    return result


def _span_size(source) -> int | None:
    return source.size if source.span is None else source.span.stop - source.span.start


class _SpanProgress:
    """Progress of a rank's part: file offsets counted from the start of each input's span."""

    def __init__(self, sources, progress):
        self._starts = [0 if s.span is None else s.span.start for s in sources]
        self._progress = progress

    def update(self, index: int, chunk, tokens: int) -> None:
        import dataclasses

        if self._starts[index]:
            chunk = dataclasses.replace(chunk, file_offset=chunk.file_offset - self._starts[index])
        self._progress.update(index, chunk, tokens)

    def __getattr__(self, name):
        return getattr(self._progress, name)




class _BuildCommand(click.Command):
    """``mmtok build``, explaining reading options given to it rather than suggesting a look-alike option."""

    READ_OPTIONS = ("--block-size", "--stride")

    def parse_args(self, ctx, args):
        for arg in args:
            if arg == "--":
                break
            option = arg.split("=", 1)[0]
            if option in self.READ_OPTIONS:
                raise click.UsageError(
                    f"{option} is not a build option: a store keeps every token, and the block size and stride are "
                    "chosen when it is read (TokenDataset.open(store, block_size=N), mmtok show --sample I "
                    "--block-size N, mmtok merge --block-size N); build without it", ctx=ctx)
        return super().parse_args(ctx, args)


@click.command("build", cls=_BuildCommand)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Store folder to create (or resume, or append to).")
@click.option("--tokenizer", default=None, help="tokenizer.json, model folder, or 'gpt2' (the bundled default).")
@click.option("--vocab-file", default=None, help="GPT-2-style vocab.json (with --merges-file).")
@click.option("--merges-file", default=None, help="GPT-2-style merges.txt (with --vocab-file).")
@click.option("--eos-token", default=None, help="Token appended after every document (default: the tokenizer's).")
@click.option("--line-by-line/--bulk", "line_by_line", default=None,
              help="One document per line, or the whole file as one document. Default: csv/jsonl by line, txt bulk.")
@click.option("--column", default=None, help="CSV column (name or 0-based index) for files with several columns.")
@click.option("--no-header", is_flag=True, help="The CSV files have no header row.")
@click.option("--csv-field-limit", type=click.IntRange(min=1), default=None,
              help="Longest CSV field accepted, in characters (default 16 Mi): a longer one is an error.")
@click.option("--field", default=None, help="JSON lines: the field holding the text (default: text).")
@click.option("--append", is_flag=True, help="Add the inputs to an existing store (same tokenizer).")
@click.option("--again", is_flag=True,
              help="With --append: append even if the store already holds these same inputs (a rerun is otherwise a no-op).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Tokenizing threads (default: all cores).")
@click.option("--engine", type=click.Choice(["auto", "fastokens", "tiktoken", "tokenizers"]), default="auto",
              show_default=True, help="Encoder: the first of fastokens and tiktoken proven to give the tokenizer's "
              "ids, else the tokenizers reference; naming one forces it (or fails saying why).")
@click.option("--shard-tokens", type=click.IntRange(min=1), default=None, help="Close a shard after about this many tokens.")
@click.option("--chunk-bytes", type=click.IntRange(min=1), default=None,
              help="Read inputs in pieces of about this many bytes (default 1 MiB).")
@click.option("--rank", type=click.IntRange(min=0), default=None,
              help="Build only split RANK of the inputs (0-based; with --world-size), e.g. $SLURM_ARRAY_TASK_ID.")
@click.option("--world-size", type=click.IntRange(min=1), default=None,
              help="How many splits the inputs are cut into (by file and by byte ranges at safe cut points).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def build_command(inputs, output, tokenizer, vocab_file, merges_file, eos_token, line_by_line, column, no_header,
                  csv_field_limit, field, append, again, workers, engine, shard_tokens, chunk_bytes, rank,
                  world_size, quiet):
    """Tokenize INPUT files (.txt, .csv, .jsonl, optionally .gz/.zst) into the store OUTPUT.

    Rerunning an interrupted build resumes it where it stopped. With --rank R
    --world-size W, build only partition R of W (one per Slurm array task or
    machine); `mmtok commit OUTPUT --expect W` then joins the partitions.
    """
    from ..base.constants import DEFAULT_CHUNK_BYTES, DEFAULT_SHARD_TOKENS
    from ..tokenize.tokenizer import load_tokenizer

    if (vocab_file is None) != (merges_file is None):
        raise click.UsageError("--vocab-file and --merges-file go together")
    if again and not append:
        raise click.UsageError("--again goes with --append")
    if (rank is None) != (world_size is None):
        raise click.UsageError("--rank and --world-size go together")
    if rank is not None and rank >= world_size:
        raise click.UsageError(f"--rank {rank} is not below --world-size {world_size} (ranks count from 0)")
    if rank is not None and append:
        raise click.UsageError("--append does not combine with --rank: partitions are committed into a new store")
    tok = load_tokenizer(tokenizer, vocab_file=vocab_file, merges_file=merges_file, eos_token=eos_token, engine=engine)
    run_build(inputs, output, quiet=quiet, tokenizer=tok, line_by_line=line_by_line, column=_column(column),
              field=field, header=not no_header, csv_field_limit=csv_field_limit, append=append, again=again,
              workers=workers,
              shard_tokens=shard_tokens or DEFAULT_SHARD_TOKENS, chunk_bytes=chunk_bytes or DEFAULT_CHUNK_BYTES,
              **({} if rank is None else {"rank": rank, "world_size": world_size}))


@click.command("demo")
@click.option("-o", "--output", default="mmtok-demo", show_default=True, help="Folder for the demo text and store.")
def demo_command(output):
    """Build a store from Python's own reference documentation, verify it and show it.

    Needs no files of yours and no network: the text ships with Python, the
    GPT-2 tokenizer ships with mmtok.
    """
    from ..inputs.sampletext import python_docs_prose
    from ..store.stats import store_info
    from ..store.verify import verify_store
    from ..views.dataset import TokenDataset
    from .inspect_cmd import print_info

    os.makedirs(output, exist_ok=True)
    text_path = os.path.join(output, "python-docs.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(python_docs_prose())
    store_path = os.path.join(output, "python-docs.mmtok")
    store = run_build([text_path], store_path, quiet=False, line_by_line=None, column=None, field=None, header=True)
    verify_store(store_path)
    click.echo(f"verify: OK ({counted(len(store.shards), 'shard')} checked)")
    print_info(store_info(store))
    dataset = TokenDataset.open(store, block_size=64)
    click.echo(f"\n{dataset!r}")
    click.echo(f"sample 0, ids:  {dataset[0][:16].tolist()} ...")
    click.echo(f"sample 0, text: {dataset.decode(0)!r}")


COMMANDS = [build_command, demo_command]
