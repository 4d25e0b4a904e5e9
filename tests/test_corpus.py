"""Tests for semhash.corpus: walking, decoding, skipping and JSON lines."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import sys
import threading
from pathlib import Path

import pytest

from semhash import corpus
from semhash.corpus import (
    CorpusError,
    Document,
    ReadStats,
    iter_documents,
    iter_jsonl,
    read_text,
)

SAMPLE = Path(__file__).resolve().parent.parent / "corpora" / "20news-sample"
SAMPLE_GROUPS = {
    "comp.graphics",
    "rec.sport.hockey",
    "sci.med",
    "sci.space",
    "talk.politics.guns",
}


def write(path: Path, data: str | bytes) -> Path:
    """Create ``path`` (and its parents) holding ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def read_all(paths, **kwargs) -> tuple[list[Document], ReadStats]:
    stats = ReadStats()
    docs = list(iter_documents([str(p) for p in paths], stats, **kwargs))
    return docs, stats


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small corpus: one file at the root, two labelled folders, one nested."""
    root = tmp_path / "corpus"
    write(root / "top.txt", "at the root")
    write(root / "sci.med" / "2", "aspirin")
    write(root / "sci.med" / "10", "ibuprofen")
    write(root / "sci.space" / "1", "orbit")
    write(root / "sci.space" / "deep" / "x.md", "nebula")
    return root


# --- directories, ids and labels -------------------------------------------


def test_directory_ids_labels_and_text(tree: Path) -> None:
    docs, stats = read_all([tree])
    by_id = {d.id: d for d in docs}
    assert set(by_id) == {
        "top.txt",
        "sci.med/2",
        "sci.med/10",
        "sci.space/1",
        "sci.space/deep/x.md",
    }
    assert by_id["top.txt"].labels == ()
    assert by_id["sci.med/2"].labels == ("sci.med",)
    # The label is the immediate parent, not the top-level folder.
    assert by_id["sci.space/deep/x.md"].labels == ("deep",)
    assert by_id["sci.med/10"].text == "ibuprofen"
    assert by_id["sci.med/10"].path == os.path.join(str(tree), "sci.med", "10")
    assert stats.n_documents == 5


def test_content_hash_is_sha256_of_utf8_text(tree: Path) -> None:
    docs, _ = read_all([tree / "sci.space" / "1"])
    assert docs[0].content_hash == hashlib.sha256(b"orbit").hexdigest()


def test_order_is_sorted_depth_first_and_repeatable(tree: Path) -> None:
    first, _ = read_all([tree])
    second, _ = read_all([tree])
    ids = [d.id for d in first]
    # Files of a folder come before its subfolders; names sort as strings.
    assert ids == ["top.txt", "sci.med/10", "sci.med/2", "sci.space/1", "sci.space/deep/x.md"]
    assert ids == [d.id for d in second]


def test_order_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    for root, names in ((tmp_path / "a", "zyx"), (tmp_path / "b", "xyz")):
        for name in names:
            write(root / name / name, name)
    ids_a = [d.id for d in read_all([tmp_path / "a"])[0]]
    ids_b = [d.id for d in read_all([tmp_path / "b"])[0]]
    assert ids_a == ids_b == ["x/x", "y/y", "z/z"]


def test_paths_are_read_in_the_order_given(tree: Path) -> None:
    docs, _ = read_all([tree / "sci.space", tree / "sci.med"])
    assert [d.id for d in docs] == ["1", "deep/x.md", "10", "2"]


def test_files_directly_in_given_root_have_no_label(tree: Path) -> None:
    docs, _ = read_all([tree / "sci.med"])
    assert [(d.id, d.labels) for d in docs] == [("10", ()), ("2", ())]


def test_single_file_id_is_normalised_path_and_label_its_parent(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    docs, _ = read_all(["./sci.med//2"])
    assert docs[0].id == "sci.med/2"
    assert docs[0].labels == ("sci.med",)
    assert docs[0].path == "./sci.med//2"


def test_single_file_without_parent_has_no_label(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    docs, _ = read_all(["top.txt"])
    assert (docs[0].id, docs[0].labels, docs[0].text) == ("top.txt", (), "at the root")


def test_single_file_with_dotdot_gets_real_folder_name(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree / "sci.space" / "deep")
    docs, _ = read_all(["../1"])
    assert docs[0].labels == ("sci.space",)


def test_root_given_as_dot(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "sci.med")
    docs, _ = read_all(["."])
    assert [(d.id, d.labels) for d in docs] == [("10", ()), ("2", ())]


def test_files_without_extension_and_empty_files_are_documents(tmp_path: Path) -> None:
    write(tmp_path / "g" / "12345", "no extension")
    write(tmp_path / "g" / "empty", b"")
    docs, stats = read_all([tmp_path])
    assert [(d.id, d.text) for d in docs] == [("g/12345", "no extension"), ("g/empty", "")]
    assert stats.n_documents == 2


def test_duplicate_ids_from_two_roots_are_both_yielded(tmp_path: Path) -> None:
    write(tmp_path / "a" / "g" / "1", "first")
    write(tmp_path / "b" / "g" / "1", "second")
    docs, _ = read_all([tmp_path / "a", tmp_path / "b"])
    assert [(d.id, d.text) for d in docs] == [("g/1", "first"), ("g/1", "second")]


def test_hidden_files_and_directories_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "keep.txt", "kept")
    write(tmp_path / ".hidden.txt", "secret")
    write(tmp_path / ".git" / "config", "git stuff")
    write(tmp_path / "g" / ".DS_Store", "junk")
    write(tmp_path / "g" / "doc", "kept too")
    docs, stats = read_all([tmp_path])
    assert [d.id for d in docs] == ["keep.txt", "g/doc"]
    assert stats.n_binary == stats.n_unreadable == 0


def test_iter_documents_is_lazy(tree: Path) -> None:
    stats = ReadStats()
    gen = iter_documents([str(tree)], stats)
    next(gen)
    assert stats.n_documents == 1


# --- binary, encodings, truncation ------------------------------------------


def test_binary_files_are_skipped_and_counted(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "text")
    write(tmp_path / "b.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    docs, stats = read_all([tmp_path])
    assert [d.id for d in docs] == ["a.txt"]
    assert stats.n_binary == 1
    assert stats.n_documents == 1


def test_nul_detection_only_looks_at_first_8k(tmp_path: Path) -> None:
    early = write(tmp_path / "early", b"a" * 8191 + b"\x00")
    late = write(tmp_path / "late", b"a" * 8192 + b"\x00")
    assert read_text(early) == (None, False)
    text, truncated = read_text(late)
    assert text == "a" * 8192 + "\x00"
    assert not truncated


def test_a_cap_larger_than_memory_reads_the_file_whole(tmp_path: Path, monkeypatch) -> None:
    # `index --max-bytes 100000000000` ("no limit") was a MemoryError: read(n) allocates n bytes.
    monkeypatch.setattr(corpus, "READ_PIECE", 3)  # several pieces, and a cap that ends inside one
    path = write(tmp_path / "f", "orbit shuttle")
    for cap in (10**15, 2**70):
        assert read_text(path, cap) == ("orbit shuttle", False)
    assert read_text(path, 7) == ("orbit s", True) and read_text(path, 13) == ("orbit shuttle", False)


def test_non_ascii_bytes_without_nul_are_text(tmp_path: Path) -> None:
    path = write(tmp_path / "f", bytes(range(1, 256)))
    text, _ = read_text(path)
    assert text is not None and len(text) == 255


def test_utf8_is_decoded(tmp_path: Path) -> None:
    path = write(tmp_path / "f", "naïve café — ünïcode")
    assert read_text(path) == ("naïve café — ünïcode", False)


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"\xef\xbb\xbfhello")
    assert read_text(path) == ("hello", False)


def test_latin1_fallback(tmp_path: Path) -> None:
    path = write(tmp_path / "f", "Montréal Canadiens, Jägermeister".encode("latin-1"))
    assert read_text(path) == ("Montréal Canadiens, Jägermeister", False)


def test_latin1_fallback_through_iter_documents(tmp_path: Path) -> None:
    write(tmp_path / "g" / "1", b"caf\xe9 \xff")
    docs, stats = read_all([tmp_path])
    assert docs[0].text == "café ÿ"
    assert docs[0].content_hash == hashlib.sha256("café ÿ".encode("utf-8")).hexdigest()
    assert stats.n_binary == 0


def test_truncation_reads_up_to_cap_and_is_counted(tmp_path: Path) -> None:
    write(tmp_path / "big", "x" * 100)
    write(tmp_path / "exact", "y" * 10)
    docs, stats = read_all([tmp_path], max_bytes=10)
    assert [(d.id, d.text) for d in docs] == [("big", "x" * 10), ("exact", "y" * 10)]
    assert stats.n_truncated == 1
    assert read_text(tmp_path / "big", max_bytes=10) == ("x" * 10, True)
    assert read_text(tmp_path / "exact", max_bytes=10) == ("y" * 10, False)


def test_truncation_inside_utf8_character_keeps_utf8(tmp_path: Path) -> None:
    # "é" is 2 bytes in UTF-8; a 4-byte cap cuts it in half. The text must stay
    # UTF-8 ("abc") rather than fall back to latin-1 ("abcÃ").
    path = write(tmp_path / "f", "abcé and more")
    assert read_text(path, max_bytes=4) == ("abc", True)


def test_binary_file_larger_than_cap_is_still_binary(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"\x00" * 100)
    assert read_text(path, max_bytes=10) == (None, True)


def test_read_text_raises_oserror_for_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        read_text(tmp_path / "missing")


# --- symlinks and unreadable entries ----------------------------------------


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loop_terminates(tmp_path: Path) -> None:
    write(tmp_path / "a" / "doc", "inside")
    os.symlink("..", tmp_path / "a" / "up")  # a/up -> tmp_path, which contains a
    os.symlink(".", tmp_path / "a" / "self")  # a/self -> a
    # islice bounds the test: a walk that loops yields "a/doc" again at each
    # level, so a regression fails here instead of hanging the suite.
    docs = list(itertools.islice(iter_documents([str(tmp_path)]), 10))
    assert [d.id for d in docs] == ["a/doc"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinked_directory_is_followed_once(tmp_path: Path) -> None:
    write(tmp_path / "outside" / "note", "linked in")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "outside", root / "notes")
    os.symlink(tmp_path / "outside", root / "notes2")
    docs, _ = read_all([root])
    # Same real directory through two links: read once, via the first name.
    assert [(d.id, d.labels, d.text) for d in docs] == [("notes/note", ("notes",), "linked in")]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_dangling_symlink_is_counted_unreadable(tmp_path: Path) -> None:
    write(tmp_path / "ok", "fine")
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")
    docs, stats = read_all([tmp_path])
    assert [d.id for d in docs] == ["ok"]
    assert stats.n_unreadable == 1


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read anything"
)
def test_permission_denied_is_counted_unreadable(tmp_path: Path) -> None:
    write(tmp_path / "ok", "fine")
    locked = write(tmp_path / "locked", "secret")
    locked.chmod(0)
    try:
        docs, stats = read_all([tmp_path])
    finally:
        locked.chmod(0o644)
    assert [d.id for d in docs] == ["ok"]
    assert stats.n_unreadable == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_walked_directory_is_skipped_not_opened(tmp_path: Path) -> None:
    write(tmp_path / "ok", "fine")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)  # opening it for reading blocks until a writer shows up
    result: list = []
    reader = threading.Thread(target=lambda: result.append(read_all([tmp_path])), daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():
        with open(pipe, "wb"):  # unblock the stuck reader before failing
            pass
        pytest.fail("iter_documents opened a FIFO and blocked")
    docs, stats = result[0]
    assert [d.id for d in docs] == ["ok"]
    assert stats.n_unreadable == 1


# --- errors ----------------------------------------------------------------


def test_nonexistent_path_raises_before_any_document(tree: Path) -> None:
    missing = str(tree / "nope")
    gen = iter_documents([str(tree), missing])
    with pytest.raises(CorpusError, match=r"^no such file or directory: .*nope$"):
        next(gen)


def test_corpus_error_is_a_value_error() -> None:
    assert issubclass(CorpusError, ValueError)


# --- JSON lines -------------------------------------------------------------


def test_jsonl_from_stdin_argument() -> None:
    stdin = io.StringIO(
        '{"id": "a", "text": "first", "labels": ["x", "y"]}\n'
        "\n"
        '   \n'
        '{"id": "b", "text": "second"}\n'
        '{"text": "third"}\n'
    )
    docs, stats = read_all(["-"], stdin=stdin)
    assert [(d.id, d.text, d.labels, d.path) for d in docs] == [
        ("a", "first", ("x", "y"), None),
        ("b", "second", (), None),
        ("5", "third", (), None),  # missing id -> line number, blank lines counted
    ]
    assert docs[2].content_hash == hashlib.sha256(b"third").hexdigest()
    assert stats.n_documents == 3
    assert stats.n_numbered == 1  # the summary warns: another stream's line 5 would replace it


def test_jsonl_mixed_with_directories(tree: Path) -> None:
    stdin = io.StringIO('{"id": "s", "text": "from stdin"}\n')
    docs, _ = read_all([tree / "sci.med", "-"], stdin=stdin)
    assert [d.id for d in docs] == ["10", "2", "s"]


def test_jsonl_reads_default_sys_stdin_as_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = '{"id": "é", "text": "naïve"}\n'.encode("utf-8") + b'{"text": "bad \xff byte"}\n'
    fake = io.TextIOWrapper(io.BytesIO(raw), encoding="ascii")
    monkeypatch.setattr(sys, "stdin", fake)
    docs = list(iter_documents(["-"]))
    assert [(d.id, d.text) for d in docs] == [("é", "naïve"), ("2", "bad \ufffd byte")]


def test_jsonl_integer_id_becomes_string() -> None:
    docs = list(iter_jsonl(['{"id": 42, "text": "t"}']))
    assert docs[0].id == "42"


def test_jsonl_lone_surrogate_is_replaced() -> None:
    docs = list(iter_jsonl(['{"text": "a\\ud800b"}']))
    assert "\ud800" not in docs[0].text
    assert docs[0].text.startswith("a") and docs[0].text.endswith("b")
    docs[0].text.encode("utf-8")  # must not raise


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"^line 3 of stdin is not valid JSON: "),
        ('["a list"]', r"^line 3 of stdin is not a JSON object"),
        ('{"id": "x"}', r"^line 3 of stdin has no 'text' string"),
        ('{"id": "x", "text": 5}', r"^line 3 of stdin has no 'text' string"),
        ('{"id": ["x"], "text": "t"}', r"^line 3 of stdin has an 'id'"),
        ('{"id": "", "text": "t"}', r"^line 3 of stdin has an 'id'"),
        ('{"text": "t", "labels": "x"}', r"^line 3 of stdin has 'labels'"),
        ('{"text": "t", "labels": [1]}', r"^line 3 of stdin has 'labels'"),
    ],
)
def test_jsonl_malformed_line_names_line_number(line: str, message: str) -> None:
    lines = ['{"text": "ok"}', "", line, '{"text": "never reached"}']
    gen = iter_jsonl(lines)
    assert next(gen).text == "ok"
    with pytest.raises(CorpusError, match=message) as excinfo:
        next(gen)
    assert "\n" not in str(excinfo.value)


def test_jsonl_error_names_custom_source() -> None:
    with pytest.raises(CorpusError, match=r"^line 1 of docs\.jsonl "):
        list(iter_jsonl(["oops"], source="docs.jsonl"))


def test_jsonl_null_labels_means_none() -> None:
    docs = list(iter_jsonl(['{"text": "t", "labels": null}']))
    assert docs[0].labels == ()


# --- the shipped sample ------------------------------------------------------


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="corpora/20news-sample not generated")
def test_shipped_20news_sample() -> None:
    stats = ReadStats()
    train = list(iter_documents([str(SAMPLE / "train")], stats))
    test = list(iter_documents([str(SAMPLE / "test")], stats))
    assert len(train) == 1500
    assert len(test) == 500
    assert {d.labels for d in train + test} == {(g,) for g in SAMPLE_GROUPS}
    for docs, per_group in ((train, 300), (test, 100)):
        for group in SAMPLE_GROUPS:
            assert sum(d.labels == (group,) for d in docs) == per_group
    assert (stats.n_binary, stats.n_unreadable, stats.n_truncated) == (0, 0, 0)
    assert all(d.text.startswith("From:") for d in train[:10])  # headers kept
