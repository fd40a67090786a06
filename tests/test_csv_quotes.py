"""CSV quotes that never close, over-long fields and very wide files: one clear error naming the line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import mmtok
from mmtok.base.errors import InputError
from mmtok.cli import main
from mmtok.inputs.readers import iter_chunks
from mmtok.inputs.sources import resolve_source


def _docs(path, **options) -> list[str]:
    return [text for chunk in iter_chunks(resolve_source(str(path), **options), chunk_bytes=64) for text in chunk.texts]


@pytest.mark.parametrize("data, opened", [
    ('text\nhello\n"unterminated\nmore\nlines\n', 3),  # ends with a newline
    ('text\nhello\n"unterminated\nmore\nlines', 3),  # ends without one
    ('text\n"a"\n"b ""quoted"" and\nstill open', 3),
    ('text\n"x', 2),
    ('a,b\n1,2\n3,"open\n\n\n', 3),
])
def test_an_unterminated_quote_names_the_line_where_it_opened(tmp_path, data, opened):
    path = tmp_path / "in.csv"
    path.write_text(data)
    with pytest.raises(InputError, match=rf"in\.csv:{opened}: the quoted field opened on this line is never closed"):
        _docs(path, column=0)


@pytest.mark.parametrize("data, docs", [
    ('text\n"multi\nline"\nlast', ["multi\nline", "last"]),  # closed quote, no final newline
    ('text\r\n"a ""b"""\r\nc\r\n', ['a "b"', "c"]),
    ('text\nab"c\n', ['ab"c']),  # a quote inside an unquoted field is text
    ('text\n""\n', [""]),
])
def test_well_formed_quotes_still_read(tmp_path, data, docs):
    path = tmp_path / "in.csv"
    path.write_bytes(data.encode())
    assert _docs(path) == docs


def test_a_field_over_the_limit_is_an_error_and_the_limit_is_configurable(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("text\nshort\n\"" + "x " * 3000 + "\"\nafter\n")
    with pytest.raises(InputError, match=r"in\.csv:3: a field of the row that starts at line 3 is longer than "
                                         r"1,000 characters"):
        _docs(path, csv_field_limit=1000)
    assert len(_docs(path, csv_field_limit=6000)) == 3
    out = CliRunner().invoke(main, ["build", str(path), "-o", str(tmp_path / "s.mmtok"), "--csv-field-limit", "100"])
    assert out.exit_code == 1 and out.output.count("\n") == 1 and "longer than 100 characters" in out.output
    assert not (tmp_path / "s.mmtok").exists()
    with pytest.raises(InputError, match="csv_field_limit must be a positive number"):
        resolve_source(str(path), csv_field_limit=0)


def test_the_unterminated_quote_of_issue_15_no_longer_swallows_the_file(tmp_path):
    """20 MB after an unclosed quote used to become one document; now the build stops with the line."""
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("text\n")
        f.writelines(f"row {i}\n" for i in range(1000))
        f.write('"oops, a quote\n')
        f.writelines(f"row {i}, more text\n" for i in range(20000))
    with pytest.raises(InputError, match=r"big\.csv:1002: the quoted field opened on this line is never closed"):
        mmtok.build(str(path), tmp_path / "s.mmtok")
    assert not (tmp_path / "s.mmtok").exists()


def test_a_very_wide_csv_lists_only_some_columns(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("x" * 100_000) + "\n")
    out = CliRunner().invoke(main, ["build", str(path), "-o", str(tmp_path / "s.mmtok")])
    assert out.exit_code == 1 and out.output.count("\n") == 1
    assert "the file has 100,000 columns ['c0', 'c1'," in out.output and "'... 99,980 more']" in out.output
    assert len(out.output) < 600
