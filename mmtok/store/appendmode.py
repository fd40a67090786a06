"""What an append must respect: the store's tokenizer, and how it is read (FORMAT.md, "Reading mode")."""

from __future__ import annotations

from ..base.errors import OptionError, StoreExistsError, TokenizerMismatchError
from ..inputs.sources import Source

__all__ = ["check_appendable", "check_same_mode"]


def check_same_mode(path: str, base: dict, sources: list[Source]) -> None:
    """An append never changes how a store is read: onto a line-by-line store, only line-by-line inputs.

    (A store is viewed line by line when every input was read so; see FORMAT.md.
    Onto a bulk store anything may be appended, and it stays bulk.)
    """
    if not (base["inputs"] and all(entry.get("line_by_line") for entry in base["inputs"])):
        return
    bulk = [source.display for source in sources if not source.line_by_line]
    if bulk:
        raise OptionError(
            f"{path} is read line by line (one document per line, row or record), but {', '.join(bulk)} would be "
            "read as one bulk document, which would turn the whole store into bulk windows; add --line-by-line "
            "(line_by_line=True) to read it one document per line, or build it into a store of its own and "
            "blend the two")


def check_appendable(path: str, base: dict, tok, append: bool) -> None:
    if not append:
        raise StoreExistsError(
            f"{path}: a store already exists there with other inputs; use --append (append=True) "
            "to add these inputs to it, or choose another output path"
        )
    if (base["tokenizer"]["fingerprint"], base["eos_id"], base["tokenizer"]["allow_special"]) != (
        tok.fingerprint, tok.eos_id, tok.allow_special
    ):
        raise TokenizerMismatchError(
            f"{path}: the store was made with tokenizer {base['tokenizer'].get('name')} "
            f"({base['tokenizer']['fingerprint']}, eos {base['eos_id']}, "
            f"allow_special {base['tokenizer']['allow_special']}), not {tok.name} "
            f"({tok.fingerprint}, eos {tok.eos_id}, allow_special {tok.allow_special}); append with the store's tokenizer or build a new store"
        )
