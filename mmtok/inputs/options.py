"""Reading options that apply to none of a build's inputs are usage errors, named as the caller typed them."""

from __future__ import annotations

from ..base.errors import OptionError

__all__ = ["PYTHON_SPELLING", "check_options_apply"]

# How each reading option is spelled in messages: Python keywords by default;
# the command line and TokenDataset pass their own spellings.
PYTHON_SPELLING = {"column": "column=", "field": "field=", "header": "header=False", "bulk": "line_by_line=False",
                   "csv_field_limit": "csv_field_limit="}


def check_options_apply(sources, *, column=None, field: str | None = None, header: bool = True,
                        bulk: bool = False, csv_field_limit: int | None = None, spelling: dict | None = None) -> None:
    """Refuse (:class:`OptionError`) an option given explicitly that applies to none of ``sources``.

    ``column``, ``header=False`` and ``csv_field_limit`` (None: not given) apply to CSV inputs, ``field`` (None: not
    given) to JSONL inputs, ``bulk`` (an explicit ``--bulk``) to text files; in a build mixing kinds, an option needs one input it fits.
    ``spelling`` names the options as the caller typed them (default: Python).
    """
    names = {**PYTHON_SPELLING, **(spelling or {})}
    kinds = {source.kind for source in sources}
    listed = ", ".join(source.display for source in sources)
    given = [("column", column is not None, "csv", "a CSV column"),
             ("header", header is False, "csv", "CSV files"),
             ("csv_field_limit", csv_field_limit is not None, "csv", "the longest CSV field"),
             ("field", field is not None, "jsonl", "a JSON-lines field"),
             ("bulk", bulk, "txt", "text files (CSV rows and JSON lines are always one document each)")]
    for option, present, kind, what in given:
        if present and kind not in kinds:
            raise OptionError(f"{names[option]} does not apply to {listed}: it selects {what}; "
                              f"leave out {names[option]}")
