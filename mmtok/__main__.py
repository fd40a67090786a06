"""`python -m mmtok` is the `mmtok` command."""

from .cli import main

main()
