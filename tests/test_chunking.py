"""Cut rules for bulk text: exact byte rules, preference, UTF-8 safety, deterministic pieces."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtok.tokenize.cutpoints import (
    CUT_RULES,
    MAX_RUN_BYTES,
    check_rules,
    find_cut,
    iter_pieces,
    lookahead_bytes,
    sub_cuts,
)

PRINTABLE = set(range(0x21, 0x7F))
LETTERS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
RULE_SETS = [frozenset(), frozenset({"newline"}), frozenset({"space"}), frozenset({"newline", "space"})]


def is_newline_cut(b: bytes, i: int) -> bool:
    return 2 <= i < len(b) and b[i - 1] == 0x0A and b[i - 2] in PRINTABLE and b[i] in PRINTABLE


def is_space_cut(b: bytes, i: int) -> bool:
    return 1 <= i < len(b) - 1 and b[i] == 0x20 and b[i - 1] in LETTERS and b[i + 1] in LETTERS


def reference_find_cut(b: bytes, start: int, rules) -> int | None:
    """Byte-by-byte statement of the rules, to check the fast version against."""
    for rule, test in (("newline", is_newline_cut), ("space", is_space_cut)):
        if rule in rules:
            for i in range(max(start, 0), len(b)):
                if test(b, i):
                    return i
    return None


# Text that hits every rule's edge: newlines, spaces, letters, punctuation,
# tabs, CR, and multi-byte UTF-8 next to them.
pieces = st.sampled_from(["\n", " ", "a", "Z", "x y", "!", "}\n{", "\t", "\r\n", "é", "中", "😀", "\n\n", "  ", "q\nw"])
texts = st.lists(pieces, max_size=60).map("".join)


@given(text=texts, start=st.integers(min_value=-2, max_value=80), rules=st.sampled_from(RULE_SETS))
@settings(max_examples=400, deadline=None)
def test_find_cut_matches_the_byte_rules(text, start, rules):
    buf = text.encode("utf-8")
    cut = find_cut(buf, start, rules)
    assert cut == reference_find_cut(buf, start, rules)
    if cut is not None:
        assert cut >= start
        assert is_newline_cut(buf, cut) or is_space_cut(buf, cut)
        # newline is preferred: no newline cut anywhere at or after start when a space cut is returned
        if is_space_cut(buf, cut) and not is_newline_cut(buf, cut) and "newline" in rules:
            assert not any(is_newline_cut(buf, i) for i in range(max(start, 0), len(buf)))
        buf[:cut].decode("utf-8")  # never inside a multi-byte sequence
        buf[cut:].decode("utf-8")


@given(text=texts, start=st.integers(min_value=0, max_value=80))
@settings(max_examples=200, deadline=None)
def test_find_cut_accepts_any_bytes_like(text, start):
    buf = text.encode("utf-8")
    expected = find_cut(buf, start, CUT_RULES)
    assert find_cut(bytearray(buf), start, CUT_RULES) == expected
    assert find_cut(memoryview(buf), start, CUT_RULES) == expected


def test_rules_are_not_decided_past_the_buffer_end():
    assert find_cut(b"abc\nd", 0, {"newline"}) == 4
    assert find_cut(b"abc\n", 0, {"newline"}) is None  # b[i] is not in the buffer yet
    assert find_cut(b"ab cd", 0, {"space"}) == 2
    assert find_cut(b"ab c", 0, {"space"}) == 2
    assert find_cut(b"ab ", 0, {"space"}) is None  # b[i+1] is not in the buffer yet
    assert find_cut(b"\nab", 0, {"newline"}) is None  # b[i-2] does not exist


def test_newline_is_preferred_to_an_earlier_space():
    buf = b"one two three\nfour"
    assert find_cut(buf, 0, CUT_RULES) == buf.index(b"four")
    assert find_cut(buf, 0, {"space"}) == 3
    assert find_cut(buf, 0, frozenset()) is None


def test_no_cut_next_to_whitespace_or_non_ascii():
    for buf in (b"a\n b", b"a \nb", b"a\n\nb", b"\xc3\xa9\nb", b"a\n\xc3\xa9", b"a  b", b"1 2", b"\xc3\xa9 b", b"a\tb"):
        assert find_cut(buf, 0, CUT_RULES) is None, buf


def test_check_rules():
    assert check_rules(["newline"]) == frozenset({"newline"})
    with pytest.raises(ValueError, match="unknown cut rule"):
        check_rules({"newline", "sentence"})
    with pytest.raises(ValueError, match="not the string"):
        check_rules("newline")


def pieces_of(data: bytes, chunk_bytes: int, rules=CUT_RULES) -> list[tuple[bytes, bool]]:
    return list(iter_pieces(io.BytesIO(data).read, chunk_bytes=chunk_bytes, rules=rules))


def reference_pieces(data: bytes, chunk_bytes: int, rules) -> list[bytes]:
    """Pieces recomputed from scratch: the first window (growing by lookahead) that holds a cut."""
    step, out, start = lookahead_bytes(chunk_bytes), [], 0
    while start < len(data):
        rest, want = data[start:], chunk_bytes + step
        while True:
            cut = find_cut(rest[:want], chunk_bytes, rules)
            if cut is not None or want >= len(rest):
                break
            want += step
        end = len(rest) if cut is None else cut
        out.append(rest[:end])
        start += end
    return out


@given(text=texts.map(lambda t: t * 7), chunk_bytes=st.integers(min_value=1, max_value=120),
       rules=st.sampled_from(RULE_SETS))
@settings(max_examples=300, deadline=None)
def test_pieces_are_the_reference_pieces_and_resume_exactly(text, chunk_bytes, rules):
    data = text.encode("utf-8")
    got = pieces_of(data, chunk_bytes, rules)
    assert [p for p, _ in got] == reference_pieces(data, chunk_bytes, rules)
    assert b"".join(p for p, _ in got) == data
    assert [last for _, last in got] == [i == len(got) - 1 for i in range(len(got))]
    offset = 0
    for i, (piece, _) in enumerate(got):
        piece.decode("utf-8")
        if i < len(got) - 1:
            assert len(piece) >= chunk_bytes
            assert is_newline_cut(data, offset + len(piece)) or is_space_cut(data, offset + len(piece))
        offset += len(piece)
        # starting over at this piece's end gives exactly the pieces that followed
        assert pieces_of(data[offset:], chunk_bytes, rules) == got[i + 1:]


def test_pieces_of_real_text_cut_after_newlines(real_text):
    data = real_text.encode("utf-8")
    got = pieces_of(data, 50_000, frozenset({"newline"}))
    assert len(got) > 20
    assert b"".join(p for p, _ in got) == data
    offset = 0
    for piece, _ in got[:-1]:
        offset += len(piece)
        # indented code has few such cuts, so pieces may run far past the target
        assert len(piece) >= 50_000 and is_newline_cut(data, offset)


def test_a_stream_without_cut_is_forced_into_bounded_pieces_and_reading_is_not_quadratic():
    data = "中文文本没有空格".encode("utf-8") * 400_000  # 9.6 MB, no ASCII at all
    got = pieces_of(data, 256, CUT_RULES)  # 64-byte lookahead steps: quadratic rescans would never finish
    assert b"".join(p for p, _ in got) == data and len(got) == 10
    assert all(MAX_RUN_BYTES - 4 <= len(p) <= 256 + MAX_RUN_BYTES for p, _ in got[:-1])
    for piece, _ in got:
        piece.decode("utf-8")  # forced cuts fall between characters


def test_empty_stream_has_no_pieces():
    assert pieces_of(b"", 10) == []


@given(text=texts.map(lambda t: t * 5), every=st.integers(min_value=1, max_value=90), rules=st.sampled_from(RULE_SETS))
@settings(max_examples=300, deadline=None)
def test_sub_cuts_are_safe_cuts_about_every_bytes_apart(text, every, rules):
    data = text.encode("utf-8")
    cuts = sub_cuts(data, rules, every)
    assert cuts == sorted(set(cuts)) and cuts == sub_cuts(bytes(data), rules, every)  # a pure function
    for before, cut in zip([0, *cuts], cuts):
        assert cut - before >= every
        assert is_newline_cut(data, cut) or is_space_cut(data, cut)
        assert rules & {rule for rule, test in (("newline", is_newline_cut), ("space", is_space_cut))
                        if test(data, cut)}
    # a sub-piece ends early only where no cut lies in its window: never more than a window past the target
    window = lookahead_bytes(every)
    assert all(cut - before < 2 * every + window or not rules for before, cut in zip([0, *cuts], cuts))


def test_sub_cuts_of_real_text_and_of_text_without_cuts(real_text):
    data = real_text.encode("utf-8")
    cuts = sub_cuts(data, CUT_RULES)
    assert len(cuts) > len(data) // (4 * 65536) and all(is_newline_cut(data, c) or is_space_cut(data, c) for c in cuts)
    assert sub_cuts("中文文本没有空格".encode("utf-8") * 100_000, CUT_RULES) == []  # one window per step: linear
