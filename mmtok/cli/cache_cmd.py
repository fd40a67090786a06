"""`mmtok export` and `mmtok import`: one portable cache file, to and from a store."""

from __future__ import annotations

import os

import click

from ..base.constants import CACHE_DEFAULT_NAME, DEFAULT_SHARD_TOKENS
from ..base.errors import MmtokError
from ..base.progress import ProgressLine, counted, progress_parts, si_units

from ..formats import EXPORT_FORMATS as STACK_EXPORTS
from ..formats import IMPORT_FORMATS as STACK_IMPORTS


class TransferProgress(ProgressLine):
    """``progress(done, total)`` for export/import: percent, ETA, bytes, MB/s (see :class:`ProgressLine`)."""

    def __init__(self, label: str, *, stream=None, enabled: bool | None = None):
        super().__init__(stream=stream, enabled=enabled)
        self.label = label

    def __call__(self, done: int, total: int) -> None:
        elapsed = self.due()
        if elapsed is not None:
            self.show([self.label, *progress_parts(done / total if total else None, elapsed),
                       si_units(done, "B"), si_units(done / elapsed, "B/s")])


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _codec_for(output: str, codec: str | None) -> str:
    from ..cache.compression import codec_from_name

    named = codec_from_name(output)
    if codec is not None and codec != named and output.lower().endswith((".gz", ".zst", ".zstd", ".npy")):
        click.echo(f"note: {output} is named like a {named} file but is written with {codec}; "
                   "mmtok import reads any of them whatever the name", err=True)
    return codec or named


@click.command("export")
@click.argument("store")
@click.option("-o", "--output", default=CACHE_DEFAULT_NAME, show_default=True,
              help="Cache file to write (a gzip or zstd stream; despite the historical name, not a tar).")
@click.option("--format", "fmt", type=click.Choice(["mmtok", "aitextgen", "aitextgen-msgpack", *STACK_EXPORTS]),
              default="mmtok", show_default=True,
              help="mmtok: the whole store, re-importable byte for byte. aitextgen: gzip(np.save(tokens)), what "
                   "aitextgen's TokenDataset(path, from_cache=True) loads (it decompresses only names ending in .gz). "
                   "aitextgen-msgpack: gzip(msgpack list of ids), aitextgen 0.1.x. Other stacks (FORMATS.md): "
                   "megatron (OUTPUT.bin + OUTPUT.idx), hf (save_to_disk folder), parquet (file), nanogpt "
                   "(train.bin), llmc (folder of shards), olmo (folder of .npy + .csv.gz), litdata (folder).")
@click.option("--codec", type=click.Choice(["gzip", "zstd", "none"]), default=None,
              help="Compression (default: zstd for a .zst name, none for .npy, else gzip).")
@click.option("--level", type=int, default=None, help="Compression level: gzip 1-9 (default 5), zstd 1-19 (default 3).")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="zstd compression threads (default: all cores; the bytes do not depend on it, except 0 = none).")
@click.option("--no-tokenizer", is_flag=True, help="Leave the tokenizer out (import then finds GPT-2 by itself; any other needs --tokenizer).")
@click.option("--link", is_flag=True, help="megatron: no copy; one prefix per shard, its .bin a hard link "
              "(or symlink) to the shard's tokens. OUTPUT is a folder.")
@click.option("--block-size", type=click.IntRange(min=1), default=None,
              help="hf, parquet: one row per BLOCK_SIZE window of the stream instead of one per document.")
@click.option("--shard-tokens", type=click.IntRange(min=1), default=None,
              help="llmc: tokens per shard (default 1e8); olmo: per .npy file; hf: per .arrow file; "
                   "litdata: per chunk.")
@click.option("--force", is_flag=True, help="Replace an existing OUTPUT (default: refuse; other stacks' formats "
              "replace it once the new one is complete).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def export_command(store, output, fmt, codec, level, threads, no_tokenizer, link, block_size, shard_tokens, force,
                   quiet):
    """Write STORE to one compressed, checksummed cache file (default dataset_cache.tar.gz), or to another
    training stack's format (--format megatron, hf, parquet, nanogpt, llmc, olmo, litdata)."""
    from ..cache.compression import check_codec
    from ..cache.export import export_store

    if fmt in STACK_EXPORTS:
        _export_stack(store, output, fmt, codec, level, threads, no_tokenizer,
                      dict(link=link, block_size=block_size, shard_tokens=shard_tokens, force=force), quiet)
        return
    for flag, value in (("--link", link), ("--block-size", block_size), ("--shard-tokens", shard_tokens)):
        if value:
            raise click.UsageError(f"{flag} applies to other stacks' formats, not --format {fmt}")
    if os.path.lexists(output) and not force:
        from ..base.errors import StoreExistsError
        from ..store.store import Store

        Store(store)  # a missing or damaged store is the first thing to say
        raise StoreExistsError(f"{output}: already exists; choose another -o, or pass --force to replace it")
    codec = _codec_for(output, codec)
    if fmt != "mmtok":
        if codec == "zstd":
            raise click.UsageError(f"--format {fmt} is read by aitextgen as gzip or uncompressed, not zstd; "
                                   "drop --codec zstd or the .zst name")
        if no_tokenizer:
            raise click.UsageError(f"--no-tokenizer applies to --format mmtok (--format {fmt} never holds one)")
        if codec == "gzip" and not output.endswith(".gz"):
            click.echo(f"note: aitextgen decompresses a cache only when its name ends in .gz; {output} does not",
                       err=True)
    try:
        check_codec(codec, level, threads)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    progress = TransferProgress("export", enabled=False if quiet else None)
    try:
        summary = export_store(store, output, format=fmt, codec=codec, level=level, threads=threads,
                               include_tokenizer=not no_tokenizer, progress=progress)
    finally:
        progress.close()
    if not quiet:
        click.echo(f"{output}: {counted(summary['tokens'], 'token')}, {counted(summary['documents'], 'document')}, "
                   f"{_mb(summary['raw_bytes'])} -> {_mb(summary['bytes'])} ({fmt}, {summary['codec']}"
                   f"{' level ' + str(summary['level']) if summary['codec'] != 'none' else ''}; ratio {summary['ratio']:.2f}x) in {summary['seconds']:.1f} s "
                   f"({summary['mb_per_s']:,.1f} MB/s)")


@click.command("import")
@click.argument("cache")
@click.option("-o", "--output", required=True, help="Store folder to create (must not exist, unless --force).")
@click.option("--tokenizer", default=None,
              help="Tokenizer of an aitextgen cache or of --format data (default: GPT-2), or of an mmtok cache "
                   "exported with --no-tokenizer: tokenizer.json, model folder, or 'gpt2'.")
@click.option("--eos-token", default=None, help="aitextgen caches and --format: the end-of-document token "
              "(default: the tokenizer's eos).")
@click.option("--shard-tokens", type=click.IntRange(min=1), default=None,
              help="aitextgen caches and --format: close a store shard after this many tokens.")
@click.option("--format", "fmt", type=click.Choice(list(STACK_IMPORTS)), default=None,
              help="Read another stack's format instead of a cache: megatron (PREFIX, or a folder of prefixes), hf "
                   "(save_to_disk folder), parquet (file or folder), nanogpt (.bin), llmc (shard or folder), olmo "
                   "(.npy or folder). Ids must come from --tokenizer (default GPT-2); its eos ends documents.")
@click.option("--dtype", type=click.Choice(["uint16", "uint32", "int32"]), default=None,
              help="nanogpt, olmo: the id type of the headerless file (default uint16; olmo: the tokenizer's).")
@click.option("--column", default=None, help="hf, parquet: the column of token ids (default input_ids).")
@click.option("--text-column", default=None, help="hf, parquet: a column of text, tokenized like any input.")
@click.option("--force", is_flag=True, help="Replace an existing OUTPUT once the new store is complete (default: refuse; "
              "a folder that is not a store is never replaced).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def import_command(cache, output, tokenizer, eos_token, shard_tokens, fmt, dtype, column, text_column, force, quiet):
    """Rebuild a store from CACHE: an mmtok cache (gzip or zstd), or aitextgen's own caches; or with --format,
    from another training stack's token files.

    The format and codec of a cache are read from the file's bytes, not its
    name. The store appears at OUTPUT only once every shard has been checked.
    """
    from ..cache.importer import import_cache

    if fmt is not None:
        _import_stack(cache, output, fmt, tokenizer, eos_token, shard_tokens,
                      dict(dtype=dtype, column=column, text_column=text_column, force=force), quiet)
        return
    for flag, value in (("--dtype", dtype), ("--column", column), ("--text-column", text_column)):
        if value:
            raise click.UsageError(f"{flag} applies with --format (another stack's files), not to a cache")

    progress = TransferProgress("import", enabled=False if quiet else None)
    try:
        result = import_cache(cache, output, tokenizer=tokenizer, eos_token=eos_token,
                              shard_tokens=shard_tokens or DEFAULT_SHARD_TOKENS, progress=progress, overwrite=force)
    finally:
        progress.close()
    summary = result.summary
    if not quiet:
        extra = ""
        if summary["format"] != "mmtok":
            extra = f"; one document, tokenizer {summary['tokenizer']}" + (
                ", eos appended" if summary.get("eos_appended") else "")
        click.echo(f"{output}: {counted(summary['tokens'], 'token')}, {counted(summary['documents'], 'document')}, "
                   f"{counted(summary['shards'], 'shard')} from {_mb(summary['bytes'])} ({summary['format']}, {summary['codec']}; "
                   f"ratio {summary['ratio']:.2f}x) in {summary['seconds']:.1f} s ({summary['mb_per_s']:,.1f} MB/s)"
                   f"{extra}")


def _export_stack(store, output, fmt, codec, level, threads, no_tokenizer, options, quiet):
    from ..cache.remote_io import refuse_remote_for_stack
    from ..formats import export_format

    refuse_remote_for_stack(store, fmt)

    for flag, value in (("--codec", codec), ("--level", level), ("--threads", threads),
                        ("--no-tokenizer", no_tokenizer)):
        if value is not None and value is not False:
            raise click.UsageError(f"{flag} applies to the mmtok cache, not --format {fmt}")
    if output == CACHE_DEFAULT_NAME:
        raise click.UsageError(f"--format {fmt} needs -o OUTPUT (a {'folder' if fmt not in ('nanogpt', 'parquet', 'megatron') else 'path'})")
    summary = _transfer(f"export {fmt}", quiet, lambda progress: export_format(store, output, fmt, progress=progress,
                                                                            **options))
    if not quiet:
        how = f", {summary['linked']} to the shards" if summary.get("linked") else ""
        click.echo(f"{output}: {counted(summary['tokens'], 'token')}, {counted(summary['documents'], 'document')} "
                   f"as {fmt} ({counted(len(summary['files']), 'file')}, "
                   f"{_mb(summary['bytes'])} written{how}) in {summary['seconds']:.1f} s "
                   f"({summary['mb_per_s']:,.1f} MB/s)")


def _transfer(label: str, quiet: bool, run):
    """``run(progress)`` with a progress line; a plain ValueError (a bad option for the format) is a usage error."""
    progress = TransferProgress(label, enabled=False if quiet else None)
    try:
        return run(progress)
    except ValueError as exc:
        if isinstance(exc, MmtokError):
            raise
        raise click.UsageError(str(exc)) from None
    finally:
        progress.close()


def _import_stack(source, output, fmt, tokenizer, eos_token, shard_tokens, options, quiet):
    from ..formats import import_format

    summary = _transfer(f"import {fmt}", quiet, lambda progress: import_format(
        source, output, fmt, tokenizer=tokenizer, eos_token=eos_token,
        shard_tokens=shard_tokens or DEFAULT_SHARD_TOKENS, progress=progress, **options))
    if not quiet:
        appended = summary.get("eos_appended")
        note = (f"; eos appended to {appended:,} document{'s' if appended != 1 else ''} that lacked it"
                if appended else "")
        if summary.get("tokenized_from"):
            note = f"; tokenized from column {summary['tokenized_from']!r}"
        click.echo(f"{output}: {counted(summary['tokens'], 'token')}, {counted(summary['documents'], 'document')}, "
                   f"{counted(summary['shards'], 'shard')} from {fmt} (tokenizer {summary['tokenizer']}) in "
                   f"{summary['seconds']:.1f} s ({summary['mb_per_s']:,.1f} MB/s){note}")


COMMANDS = [export_command, import_command]
