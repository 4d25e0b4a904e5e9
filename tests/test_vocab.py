"""Tokenizer and vocabulary."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semhash.tokenize import WORD_RE, content, content_words, stop_words, tokenize
from semhash import lazy
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


def naive_content_words(text, stem):
    # The definition, token by token: WORD_RE's runs of the lowercased text that start
    # with a letter, stop words out, then each one's Snowball stem.
    import Stemmer

    kept = [w for w in WORD_RE.findall(text.lower()) if w[0].isalpha() and w not in stop_words()]
    return Stemmer.Stemmer("english").stemWords(kept) if stem else kept


ALPHABET = st.sampled_from(list("abcXYZ019 _-.,'\n\tÉéßİ\u00a0\u2160") + ["the ", "and ", "running ", "café "])


@settings(max_examples=300)
@given(st.lists(ALPHABET, max_size=40).map("".join), st.booleans())
def test_content_words_are_the_naive_definition(text, stem):
    # The fast path (ASCII runs by a byte table, each distinct run's term found once)
    # against the token-by-token definition, ASCII and not, stemmed and not.
    assert content_words(text, stem=stem) == naive_content_words(text, stem)
    assert tokenize(text) == [w for w in WORD_RE.findall(text.lower()) if w[0].isalpha()]


def test_content_words_forget_their_runs_when_full(monkeypatch):
    from semhash import tokenize as tokenize_module

    monkeypatch.setattr(tokenize_module._Terms, "MAX_SIZE", 3)
    tokenize_module._terms(True).clear()
    text = "alpha beta gamma delta epsilon zeta the alpha"
    assert content_words(text, stem=True) == naive_content_words(text, True)
    assert len(tokenize_module._terms(True)) <= 3


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


# The numba counter must count exactly what tokenize() + a dictionary lookup count.
ASCII_TEXT = st.lists(
    st.sampled_from(list("abcXYZ019_ -.,'\n\t") + ["ab", "Ab", "x1", "9z", "aB_c"]), max_size=80
).map("".join)


def _both_ways(texts, words, monkeypatch):
    """(counts by the kernel, counts by tokenize)."""
    with monkeypatch.context() as m:
        m.setattr(lazy, "use_kernels", lambda cost_ns, kernel=None: True)
        fast = count_words(texts, words)
        m.setattr(lazy, "use_kernels", lambda cost_ns, kernel=None: False)
        slow = count_words(texts, words)
    return fast, slow


@settings(deadline=None)  # the first example loads the kernels
@given(texts=st.lists(ASCII_TEXT, max_size=8), extra=st.lists(st.sampled_from(["ab", "x1", "abc", "café", "z"])))
def test_kernel_counts_ascii_texts_like_tokenize(texts, extra):
    monkeypatch = pytest.MonkeyPatch()
    try:
        words = sorted({t for text in texts for t in tokenize(text)} | set(extra))
        fast, slow = _both_ways(texts, words, monkeypatch)
        assert fast.dtype == slow.dtype == np.float32
        np.testing.assert_array_equal(fast, slow)
    finally:
        monkeypatch.undo()


def test_kernel_counts_mixed_ascii_and_unicode_texts(monkeypatch):
    texts = ["Café au lait, CAFÉ!", "The X11R5 server 3d x11r5", "", "naïve and naive", "1993 mp3 _ab ab_ab"]
    words = ["café", "x11r5", "server", "naive", "mp3", "ab", "3d"]
    fast, slow = _both_ways(texts, words, monkeypatch)
    np.testing.assert_array_equal(fast, slow)
    assert fast[0, 0] == 2 and fast[1, 1] == 2 and fast[3, 3] == 1 and fast[4, 5] == 3 and fast[1, 6] == 0


POST = (
    "From: C.O.EGALON@LARC.NASA.GOV (CLAUDIO OLIVEIRA EGALON)\n"
    "Subject: Re: Space Debris\n"
    "Organization: NASA Langley Research Center\n"
    "Lines: 7\n"
    "NNTP-Posting-Host: tahiti.larc.nasa.gov\n"
    "\n"
    "There is a guy in NASA Johnson Space Center.\n\nSecond paragraph.\n"
)


@pytest.mark.parametrize(
    "text, expected",
    [
        (POST, "Re: Space Debris\nThere is a guy in NASA Johnson Space Center.\n\nSecond paragraph.\n"),
        ("From: a@b.org\r\nSubject:  orbits \r\nX-Long: one\r\n  folded\r\n\r\nbody\r\n", "orbits\nbody\r\n"),
        ("From: a@b.org\nLines: 2\n\nbody only", "body only"),  # no Subject: the body
        ("Title: a note\nAuthor: me\n\nbody", "Title: a note\nAuthor: me\n\nbody"),  # not a mail header
        ("Subject: no blank line after the headers", "Subject: no blank line after the headers"),
        ("From: a@b.org\nnot a header\n\nbody", "From: a@b.org\nnot a header\n\nbody"),
        ("\nFrom: a@b.org\n\nbody", "\nFrom: a@b.org\n\nbody"),  # starts with a blank line
        ("nasa shuttle launch", "nasa shuttle launch"),
        ("", ""),
    ],
)
def test_content_keeps_subject_and_body_of_messages_only(text, expected):
    assert content(text) == expected


def test_content_gives_up_on_a_header_block_longer_than_the_limit():
    text = "From: a@b.org\n" + "X-H: v\n" * 80 + "\nbody"
    assert content(text) == text


def test_headers_never_reach_the_counts(monkeypatch):
    # Indexing and queries count the same words: those of the content, whichever path.
    words = ["space", "debris", "nasa", "center", "organization", "lines", "gov", "larc"]
    for use_kernel in (False, True):
        monkeypatch.setattr(lazy, "use_kernels", lambda cost_ns, kernel=None, k=use_kernel: k)
        counts = count_words([POST], words)[0]
        assert dict(zip(words, counts.tolist())) == {
            "space": 2, "debris": 1, "nasa": 1, "center": 1, "organization": 0, "lines": 0, "gov": 0, "larc": 0
        }
    words, _, X = fit_vocabulary([POST, POST.replace("Debris", "Junk")], 50)
    assert "organization" not in words and "egalon" not in words and "debris" in words


def test_word_ids_are_the_known_tokens_in_order():
    from semhash.vocab import word_ids

    words = ["x11r5", "server", "orbit", "mp3", "café", "crashed"]
    texts = ["The X11R5 server crashed, x11r5!", "café orbit orbit", "", "a 1993 3d mp3", "none here"]
    starts, ids = word_ids(texts, words)
    index = {w: i for i, w in enumerate(words)}
    for i, text in enumerate(texts):  # ASCII texts by the kernel, the second by tokenize
        assert ids[starts[i] : starts[i + 1]].tolist() == [index[t] for t in tokenize(text) if t in index]
    assert ids[starts[0] : starts[1]].tolist() == [0, 1, 5, 0]


# -- stemming ----------------------------------------------------------------------

FORMS = [
    "the images were resized by the resizer",
    "an image resizing tool",
    "fire fires firing",  # "fire" is a stop word; "fires" and "firing" are not
    "orbits of the moon",
    "orbit moon",
]


def test_content_words_drop_stop_words_then_stem():
    assert content_words("The images were resized", stem=False) == ["images", "resized"]
    assert content_words("The images were resized", stem=True) == ["imag", "resiz"]
    assert content_words("Fire fires firing", stem=True) == ["fire", "fire"]  # the stop word went first
    assert content_words("the of and", stem=True) == []


def test_stop_words_are_scikit_learns_without_importing_it():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    assert stop_words() == ENGLISH_STOP_WORDS
    code = "import sys; from semhash.tokenize import stop_words; stop_words(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # the query path of a stemming index stays light


@pytest.mark.parametrize("kernels", [False, True])
def test_stemmed_counts_match_for_documents_and_queries(monkeypatch, kernels):
    monkeypatch.setattr(lazy, "use_kernels", lambda cost: kernels)
    words, _, counts = fit_vocabulary(FORMS, size=10, stem=True)
    assert {"imag", "resiz", "fire", "orbit"} <= set(words) and "images" not in words
    # Documents counted again, as an update or a query reads them, count as at build.
    np.testing.assert_array_equal(count_words(FORMS, words, stem=True), counts.toarray())
    # Other forms of the same words land in the same columns; stop words count for nothing.
    q = count_words(["Imaging: resizes ORBITING images", "fire"], words, stem=True)
    assert q[0, words.index("imag")] == 2 and q[0, words.index("resiz")] == 1 and q[0, words.index("orbit")] == 1
    assert q[1].sum() == 0
    # Unstemmed counting is unchanged: forms stay apart.
    plain, _, _ = fit_vocabulary(FORMS, size=20)
    assert {"images", "image", "resized", "resizer"} <= set(plain)


@settings(max_examples=200)
@given(
    st.lists(st.lists(st.sampled_from(["moon", "orbit", "z", "ähm", "a1", "b", "the", "Orbit"]), max_size=12), max_size=25),
    st.integers(1, 4),
)
def test_count_terms_is_scikit_learns_count_vectorizer(documents, chunk):
    # The chunked count (numbered by a map, repeats summed by scipy, chunks merged)
    # against CountVectorizer over the same token lists: terms, counts, dtypes.
    from sklearn.feature_extraction.text import CountVectorizer

    from semhash import vocab

    before, vocab.DOCS_AT_ONCE = vocab.DOCS_AT_ONCE, chunk  # chunks of a few documents
    try:
        if not any(documents):
            with pytest.raises(ValueError, match="empty vocabulary"):
                vocab.count_terms(documents)
            return
        terms, full = vocab.count_terms(iter(documents))
    finally:
        vocab.DOCS_AT_ONCE = before
    vectorizer = CountVectorizer(analyzer=lambda tokens: tokens, dtype=np.float32)
    expected = vectorizer.fit_transform(documents).tocsr()
    expected.sort_indices()
    assert terms == list(vectorizer.get_feature_names_out())
    assert full.shape == expected.shape and full.has_sorted_indices
    for a, b in [(full.indptr, expected.indptr), (full.indices, expected.indices), (full.data, expected.data)]:
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@settings(max_examples=200)
@given(st.lists(st.lists(st.integers(0, 40), min_size=4, max_size=4), max_size=12), st.booleans())
def test_counts_json_is_the_dict_json_dumps_writes(rows, sparse):
    # The stored counts: {word: count}, most frequent first, ties in vocabulary order,
    # as json.dumps writes a dict (non-ASCII words escaped the same way).
    import json

    import scipy.sparse as sp

    from semhash.vocab import counts_json

    words = ["moon", "orbit", "café", 'say "hi"']
    counts = np.array(rows, np.float32).reshape(-1, 4)
    expected = []
    for row in counts:
        cols = np.flatnonzero(row)
        order = np.lexsort((cols, -row[cols]))
        expected.append(json.dumps({words[cols[j]]: int(row[cols[j]]) for j in order}))
    assert counts_json(sp.csr_matrix(counts) if sparse else counts, words) == expected


def _message_by_split(text):
    """The twin of tokenize._message that splits the text into its lines first."""
    from semhash.tokenize import _MESSAGE_FIELDS, MAX_HEADER_LINES

    lines = text.split("\n", MAX_HEADER_LINES)
    fields, subject_value = set(), None
    for i, line in enumerate(lines[:MAX_HEADER_LINES]):
        line = line.rstrip("\r")
        if not line.strip():
            if i > 0 and fields & _MESSAGE_FIELDS:
                return subject_value, "\n".join(lines[i + 1 :])
            return None
        if line[0] in " \t" and i > 0:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name or "\t" in name:
            return None
        name = name.lower()
        fields.add(name)
        if name == "subject" and subject_value is None:
            subject_value = value
    return None


def _first_line_whole(text, max_chars):
    """The twin of document.first_line that collapses the whole first line."""
    from semhash.tokenize import subject

    title = subject(text)
    if title is None:
        title = text.lstrip().splitlines()[0] if text.strip() else ""
    title = " ".join(title.split())
    return title if len(title) <= max_chars else title[: max_chars - 1] + "…"


_PIECES = ["From: a@b.org", "Subject: orbits", "Subject:", "X-Long: one", " folded", "Title: x", "\n", "\r\n", "\n\n",
           " ", "\t", " " * 40, "word", "x" * 30, "a:b", "\x0b", "\u2028", "\x85", "é", ""]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join), st.integers(1, 40))
def test_messages_and_titles_read_line_by_line_match_their_whole_text_twins(text, max_chars):
    """Reading a text's header lines one at a time, and only the start of a long
    first line for its title, gives what splitting and collapsing it whole gives."""
    from semhash.document import first_line
    from semhash.tokenize import _message

    assert _message(text) == _message_by_split(text)
    assert first_line(text, max_chars) == _first_line_whole(text, max_chars)
