"""The `mmtok` click group. Commands import the heavy parts of mmtok only when they run."""

from __future__ import annotations

import click

from ..base.errors import MmtokError
from ..base.version import __version__


class _Group(click.Group):
    """Turns mmtok's own errors into a one-line message and exit code 1, without a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MmtokError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted: nothing half-written was published (rerun an interrupted build to resume it).", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmtok")
def main() -> None:
    """Tokenize text corpora into memory-mapped stores and inspect, verify, export and merge them."""


def _register() -> None:
    from . import build_cmd, cache_cmd, inspect_cmd, merge_cmd, partition_cmd

    for module in (build_cmd, partition_cmd, inspect_cmd, cache_cmd, merge_cmd):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
