"""Tokenizer and vocabulary."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from semhash.tokenize import tokenize
from semhash.vocab import count_words, fit_vocabulary


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Hello, World!", ["hello", "world"]),
        ("The X11R5 server crashed in 1993.", ["the", "x11r5", "server", "crashed", "in"]),
        ("a b cd", ["cd"]),  # single letters are not words
        ("e-mail re:subject", ["mail", "re", "subject"]),
        ("under_score", ["under", "score"]),
        ("Café Zürich", ["café", "zürich"]),
        ("3d 42 mp3", ["mp3"]),
        ("", []),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


@given(st.text())
def test_tokenize_never_raises_and_lowercases(text):
    tokens = tokenize(text)
    assert all(t == t.lower() and len(t) >= 2 and not t[0].isdigit() for t in tokens)


DOCS = [
    "rockets rockets orbit the moon",
    "orbit of the moon and rockets",
    "hockey goal in the playoffs",
    "the goal of hockey",
    "moon",
]


def test_vocabulary_ranks_by_document_frequency_without_stop_words():
    words, df, counts = fit_vocabulary(DOCS, size=4)
    # df: moon 3, rockets 2, orbit 2, hockey 2, goal 2, playoffs 1; "the", "of", "and", "in" are stop words.
    assert words == ["moon", "goal", "hockey", "orbit"]  # ties alphabetical
    assert df.tolist() == [3, 2, 2, 2]
    assert counts.shape == (5, 4)
    assert counts.toarray()[0].tolist() == [1, 0, 0, 1]


def test_count_words_matches_fit_counts():
    words, _, counts = fit_vocabulary(DOCS, size=10)
    np.testing.assert_array_equal(count_words(DOCS, words), counts.toarray())
    assert "rockets" in words and count_words(["Rockets, ROCKETS! unknownword"], words)[0].sum() == 2


def test_count_words_out_of_vocabulary_is_empty():
    words, _, _ = fit_vocabulary(DOCS, size=10)
    assert count_words(["zzz qqq the"], words).sum() == 0
