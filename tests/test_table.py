"""The terminal table of hits: alignment, width, escaping."""

import pytest

from semhash.table import cell_width, cut, hit_table, printable

ROWS = [
    {"id": "sci.space/60830", "score": 2.63431, "distance": 20, "title": "Re: japanese moon landing?"},
    {"id": "sci.space/7", "score": 0.5, "distance": 9, "title": "Portuguese Launch Complex (was:*Doppelganger*)"},
]


def test_columns_are_aligned_and_titled():
    assert hit_table(ROWS, "score", 80) == [
        "#   score  id               title",
        "1  2.6343  sci.space/60830  Re: japanese moon landing?",
        "2  0.5000  sci.space/7      Portuguese Launch Complex (was:*Doppelganger*)",
    ]


def test_distance_ranks_when_there_is_no_score():
    assert hit_table(ROWS, "distance", 80)[:2] == [
        "#  distance  id               title",
        "1        20  sci.space/60830  Re: japanese moon landing?",
    ]


@pytest.mark.parametrize("width", [40, 50, 60])
def test_titles_are_cut_to_the_width_and_ids_never(width):
    lines = hit_table(ROWS, "score", width)
    assert all(cell_width(line) <= width for line in lines)
    assert lines[2].startswith("2  0.5000  sci.space/7 ") and lines[2].endswith("…")


def test_no_room_for_a_title_leaves_it_out():
    assert hit_table(ROWS, "score", 30) == ["#   score  id", "1  2.6343  sci.space/60830", "2  0.5000  sci.space/7"]


def test_control_characters_cannot_break_the_table():
    rows = [{"id": "evil\nid\x1b[2J", "score": 1.0, "distance": 0, "title": "bell\x07 and\u200bzero-width \udc80"}]
    lines = hit_table(rows, "score", 200)
    assert lines[1] == "1  1.0000  evil\\nid\\x1b[2J  bell\\x07 and\\u200bzero-width \\udc80"
    assert len(lines) == 2 and all(ch.isprintable() for line in lines for ch in line)


def test_wide_characters_count_twice():
    rows = [{"id": "日本/1", "score": 1.0, "distance": 0, "title": "東京の宇宙船の打ち上げについて"}, {"id": "a/2", "score": 0.5, "distance": 1, "title": "x"}]
    lines = hit_table(rows, "score", 30)
    assert [cell_width(line) for line in lines[1:2]] == [30]  # the title cut on a character boundary
    assert lines[2].startswith("2  0.5000  a/2     x")  # "日本/1" takes 6 columns


def test_nothing_to_show():
    assert hit_table([], "score", 80) == []


def test_helpers():
    assert cut("abcdef", 4) == "abc…" and cut("abc", 3) == "abc"
    assert printable("tab\there") == "tab\\there" and printable("é ü") == "é ü"
    assert cell_width("e\u0301") == 1  # a combining accent takes no column
