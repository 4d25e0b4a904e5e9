"""The library API: Index.build / open / add / query / similar, typed errors, atomic updates."""

import inspect
import os
import shutil
import subprocess
import sys
import sqlite3

import numpy as np
import pytest

import semhash
from semhash import encoding, filters, graph, shortlists, termcodes

import naive
from semhash.api import BuildError, DocumentNotFound, EmptyQuery, Hit, Index, ModelMismatch, QueryError, build_index
from semhash.store import StoreError
from semhash.tokenize import content_words
from semhash.writer import IndexWriter
from semhash.vocab import count_words

TINY = dict(
    vocab_size=300, address_bits=8, code_bits=32, hidden_sizes=(32,), n_epochs_pretrain=5, n_epochs_finetune=5
)


@pytest.fixture(scope="module")
def corpus_and_db(tiny_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    shutil.copytree(tiny_corpus, root / "corpus")
    index = Index.build([str(root / "corpus")], root / "index.db", **TINY)
    index.close()
    return root


@pytest.fixture
def copy(corpus_and_db, tmp_path):
    shutil.copytree(corpus_and_db, tmp_path / "c")
    return tmp_path / "c"


def test_public_names():
    assert semhash.Index is Index and semhash.build_index is build_index
    assert {"Index", "SemanticHasher", "build_index", "__version__"} <= set(semhash.__all__)


def test_build_returns_an_open_index(copy):
    index = Index.build([str(copy / "corpus")], copy / "again.db", **TINY)
    assert len(index) == 60 and index.summary.n_documents == 60
    assert index.summary.line().startswith("indexed 60 documents")
    hits = index.query("space shuttle orbit", k=3)
    assert len(hits) == 3 and all(isinstance(h, Hit) for h in hits)
    assert hits[0].labels and hits[0].title and hits[0].path.startswith(str(copy / "corpus"))
    index.close()


def test_build_index_still_returns_a_summary(copy):
    summary = build_index([str(copy / "corpus")], copy / "b.db", **TINY)
    assert summary.n_documents == 60 and summary.vocabulary_size == 300


def test_similar_excludes_the_document(copy):
    with Index.open(copy / "index.db") as index:
        doc = index.query("space shuttle orbit", k=1)[0].id
        hits = index.similar(doc, k=59)
        assert len(hits) == 59 and doc not in [h.id for h in hits]
        with pytest.raises(DocumentNotFound, match="no document 'nope'"):
            index.similar("nope")
        with pytest.raises(QueryError, match="at least 1"):
            index.similar(doc, k=0)


def test_add_is_incremental_and_query_sees_it(copy):
    (copy / "corpus" / "sci.space" / "zz-new").write_text("The shuttle launch put the satellite in orbit.")
    with Index.open(copy / "index.db") as index:
        summary = index.add([str(copy / "corpus")])
        assert (summary.n_added, summary.n_updated, summary.n_unchanged, summary.n_removed) == (1, 0, 60, 0)
        assert len(index) == 61  # reloaded after writing
        assert "sci.space/zz-new" in [h.id for h in index.query("shuttle launch satellite orbit", k=61)]
        again = index.add([str(copy / "corpus")])
        assert (again.n_added, again.n_unchanged, again.drift) == (0, 61, None)


def test_interrupted_update_leaves_the_index_intact(copy, monkeypatch):
    sci = sorted((copy / "corpus" / "sci.space").iterdir())
    sci[0].unlink()
    (copy / "corpus" / "sci.space" / "zz-new").write_text("The shuttle launch put the satellite in orbit.")
    query = "SELECT id, content_hash, address, code FROM documents ORDER BY id"
    before = sqlite3.connect(copy / "index.db").execute(query).fetchall()

    def interrupted(self, ids):
        raise KeyboardInterrupt

    monkeypatch.setattr(IndexWriter, "delete", interrupted)
    with Index.open(copy / "index.db") as index, pytest.raises(KeyboardInterrupt):
        index.add([str(copy / "corpus")], prune=True)  # the new document was written before this
    assert sqlite3.connect(copy / "index.db").execute(query).fetchall() == before


def test_model_mismatch_is_typed(copy):
    with Index.open(copy / "index.db") as index:
        index.check_options(code_bits=32, hidden_sizes=[32])  # same: fine
        with pytest.raises(ModelMismatch, match="code_bits=64"):
            index.check_options(code_bits=64)


def test_typed_errors(tmp_path):
    with pytest.raises(StoreError, match="no index at"):
        Index.open(tmp_path / "none.db")
    (tmp_path / "few").mkdir()
    (tmp_path / "few" / "a").write_text("rockets")
    with pytest.raises(BuildError, match="at least 10"):
        Index.build([str(tmp_path / "few")], tmp_path / "x.db", **TINY)


def test_a_one_shot_query_never_loads_numba(corpus_and_db):
    # Importing numba and loading the cached kernels costs ~0.5 s: more than a whole
    # query over a small index, so a process that asks one question runs numpy only.
    code = (
        "import sys; from semhash import Index; "
        f"hits = Index.open({str(corpus_and_db / 'index.db')!r}).query('space shuttle orbit', k=3); "
        "print(len(hits), 'numba' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["3", "False", "False"]


def test_a_first_build_compiles_only_the_training_kernels(tiny_corpus, tmp_path):
    # With numba's cache empty (a fresh clone before make install), compiling the
    # neighbour pass's kernels took 44 s of CPU; numpy does a small corpus's in less.
    code = (
        "import sys, numba.core.event as ev; from semhash import Index; "
        "compiled = set(); "
        "listener = type('L', (ev.Listener,), {'on_start': lambda self, e: None, "
        "'on_end': lambda self, e: compiled.add(e.data['dispatcher'].py_func.__name__)})(); "
        "ev.register('numba:compile', listener); "
        f"Index.build([{str(tiny_corpus)!r}], {str(tmp_path / 'index.db')!r}, **{TINY!r}).close(); "
        "print(*sorted(compiled))"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["adam_step", "softmax_xent"]


@pytest.mark.parametrize("command_line", [False, True])
def test_the_command_line_loads_the_kernels_without_numbas_blas_probe(corpus_and_db, command_line):
    # numba's probe imports scipy.linalg (0.33 s); the kernels need no BLAS. numba's
    # own np.dot still finds it afterwards. A library user's process keeps the probe.
    run_cli = f"cli.cli.main(['info', '-d', {str(corpus_and_db / 'index.db')!r}], standalone_mode=False); " if command_line else ""
    code = (
        "import sys, numpy as np, numba; from semhash import cli; from semhash.lazy import kernels; "
        f"{run_cli}kernels.address_histogram(np.zeros(1, np.int64), 0, 1); "
        "print('scipy.linalg' in sys.modules, 'scipy.linalg.cython_blas' in sys.modules); "
        "print(numba.njit(lambda a: np.dot(a, a))(np.eye(2)).sum(), 'scipy.linalg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    skipped = ["False", "False"] if command_line else ["True", "True"]
    assert out.split()[-4:] == [*skipped, "2.0", "True"]


def test_batch_and_one_by_one_queries_agree(corpus_and_db):
    texts = ["space shuttle orbit", "god bible church", "graphics image format", "nasa launch"] * 3
    with Index.open(corpus_and_db / "index.db") as index:
        batch = index.query_many(texts, k=7, skip_empty=True)
        assert sum(hits is not None for hits in batch) >= 6
        assert batch == [index.query(t, k=7) if hits is not None else None for t, hits in zip(texts, batch)]


def test_a_query_of_words_only_the_terms_know_is_answered_by_them(corpus_and_db):
    """A query with no word of the model's vocabulary but some indexed term finds
    the documents that hold it, ranked by words; the codes alone, by its term's code."""
    from semhash.tokenize import tokenize

    with Index.open(corpus_and_db / "index.db") as index:
        terms, _ = index.stored.all_terms()
        holders = {}  # term -> ids of the documents whose text holds it
        for doc_id, path in index.stored.conn.execute("SELECT id, path FROM documents"):
            for t in set(tokenize(encoding.read(index, [open(path, encoding="latin-1").read()])[0])):
                holders.setdefault(t, set()).add(doc_id)
        word = next(t for t in sorted(terms) if t not in index.words and t.isalpha() and 2 <= len(holders.get(t, ())) <= 5)
        hits = index.query(word, k=10)
        assert {h.id for h in hits} == holders[word]  # every holder, and only them
        assert index.query_many(["zzzz qqqq", word], k=10, skip_empty=True) == [None, hits]
        # The codes alone answer it by the code its term gave it (semhash.termcodes).
        coded = index.query(word, k=10, codes_only=True)
        assert holders[word] & {h.id for h in coded}
        with pytest.raises(EmptyQuery):
            index.query("zzzz qqqq", k=10, codes_only=True)
        # Distance bounds keep the hits within them, in the same order.
        middle = sorted(h.distance for h in hits)[len(hits) // 2]
        assert index.query(word, k=10, max_distance=middle) == [h for h in hits if h.distance <= middle]


def test_a_document_of_words_only_the_terms_know_finds_their_holders_but_itself(copy):
    """similar --file of a text with no word of the model's vocabulary: answered by
    its words, as a query is, without the indexed documents of the same content."""
    with Index.open(copy / "index.db") as index:
        terms, _ = index.stored.all_terms()
        held = index.stored.postings(range(index.n_terms))
        word = next(terms[t] for t, (df, _) in sorted(held.items()) if 2 <= df <= 5 and terms[t] not in index.words and terms[t].isalpha())
        hits = index.query(word, k=10)
    (copy / "corpus" / "mine").mkdir()
    (copy / "corpus" / "mine" / "word.txt").write_text(word)
    with Index.open(copy / "index.db") as index:
        index.add([str(copy / "corpus")])
        assert "mine/word.txt" in {h.id for h in index.query(word, k=10)}
        # The same documents (their scores moved, and so may the order of close ones:
        # the new document joined the feedback round's best before it was left out;
        # their distances too: a query's code is its term's, a document's is not).
        ranked = [(h.id, h.distance) for h in index.similar_to_text(word, k=10)]
        assert {i for i, _ in ranked} == {h.id for h in hits}
        assert [(h.id, h.distance) for h in index.similar_to_text(word, k=1)] == ranked[:1]
        # The indexed document itself: its code is an empty document's, so it is
        # answered by its words too (it was answered by the codes: arbitrary hits).
        assert [(h.id, h.distance) for h in index.similar("mine/word.txt", k=10)] == ranked
        with pytest.raises(EmptyQuery):
            index.similar_to_text("zzzz qqqq")
    (copy / "corpus" / "mine" / "empty.txt").write_text("the and of\n")  # stop words only
    with Index.open(copy / "index.db") as index:
        index.add([str(copy / "corpus")])
        with pytest.raises(EmptyQuery):
            index.similar("mine/empty.txt")


def test_a_bounded_query_finds_k_hits_when_the_shortlist_holds_k_within_its_bounds(corpus_and_db):
    """The best hits by words can all lie outside a --max-distance: the bounded
    query still keeps the best k within it (it used to return none)."""
    with Index.open(corpus_and_db / "index.db") as index:
        for text in ("space shuttle orbit", "hockey team season", "graphics image software"):
            _, codes, _ = index.encode([text], lift=True, query=True)
            distances = np.sort(np.bitwise_count(index.codes ^ codes[0]).sum(axis=1))
            for at in (0, 5, 20):  # the shortlist is every post: exactly these pass
                bound = int(distances[at])
                hits = index.query(text, k=5, max_distance=bound)
                assert len(hits) == min(5, int((distances <= bound).sum()))
                assert all(h.distance <= bound for h in hits)
                unbounded = [h for h in index.query(text, k=60) if h.distance <= bound]
                assert hits == unbounded[:5]  # in the order of the ranking


def test_the_documents_holding_a_query_s_rarest_term_join_its_shortlist(corpus_and_db, monkeypatch):
    """A document the Hamming ball leaves out is ranked when it holds the query's
    rarest term (and is not when rerank.RARE_TERMS is 0)."""
    from semhash import rerank, search

    monkeypatch.setattr(rerank, "SHORTLIST", 5)  # a ball of 10 of the 60 posts
    monkeypatch.setattr(rerank, "SHORT_QUERY", 0)  # (a short query takes every posted term's holders)
    monkeypatch.setattr(termcodes, "ENCODER_ENOUGH", -1.0)  # the rare term leaves the code as it is
    with Index.open(corpus_and_db / "index.db") as index:
        text = "space shuttle orbit"
        addresses, codes, known = index.encode([text], lift=True, query=True)
        assert known[0] == 3  # words of the model: the ball is its code's
        ball, _, counts, _ = search.search_many(index.table, index.codes, addresses, codes, 10, shortlist=index.shortlist)
        terms, _ = index.stored.all_terms()
        held = index.stored.postings(range(index.n_terms))
        # A term the model's vocabulary lacks (the code stays the same) that only one post outside the ball holds.
        rare = next(
            t for t, (df, rowids) in sorted(held.items())
            if df == 1 and terms[t] not in index.words and terms[t].isalpha()
            and shortlists.positions(index, rowids)[0] not in ball[0, : counts[0]]
        )
        holder = shortlists.positions(index, held[rare][1])[0]
        ranked = []  # the shortlists the ranking gets
        rank = shortlists.rank
        monkeypatch.setattr(shortlists, "rank", lambda index, rows, d, counts, *a: ranked.append(rows[:, : counts.max()]) or rank(index, rows, d, counts, *a))
        query = f"{text} {terms[rare]}"
        hits = index.query(query, k=10)
        assert holder in ranked[-1][0] and len(ranked[-1][0]) > 10  # (and holders of its other terms: 60 posts)
        assert index.query_many([text, query], k=10)[1] == hits
        assert holder in ranked[-1][1]
        monkeypatch.setattr(rerank, "RARE_TERMS", 1)  # its rarest term only
        index.query(query, k=10)
        assert sorted(ranked[-1][0]) == sorted([*ball[0], holder])
        monkeypatch.setattr(rerank, "RARE_TERMS", 0)
        index.query(query, k=10)
        assert sorted(ranked[-1][0]) == sorted(ball[0])


def test_a_bounded_query_adds_no_rare_term_holder_outside_its_bounds(corpus_and_db, monkeypatch):
    """Holders of rare terms beyond max_distance (or below min_distance) could never
    be hits; ranked among the first, one made _ranked stop short ("the ball reaches
    past max_distance") with fewer than k hits."""
    from semhash import rerank, search

    monkeypatch.setattr(rerank, "SHORTLIST", 5)
    monkeypatch.setattr(termcodes, "ENCODER_ENOUGH", -1.0)  # the rare term leaves the code as it is
    with Index.open(corpus_and_db / "index.db") as index:
        text = "space shuttle orbit"
        addresses, codes, _ = index.encode([text], lift=True, query=True)
        ball, _, counts, _ = search.search_many(index.table, index.codes, addresses, codes, 10, shortlist=index.shortlist)
        terms, _ = index.stored.all_terms()
        distance = np.bitwise_count(index.codes ^ codes[0]).sum(axis=1)
        held = index.stored.postings(range(index.n_terms))
        rare, holder = next(
            (t, p) for t, (df, rowids) in sorted(held.items())
            if df == 1 and terms[t] not in index.words and terms[t].isalpha()
            and (p := shortlists.positions(index, rowids)[0]) not in ball[0, : counts[0]] and distance[p] > 0
        )
        ranked = []
        rank = shortlists.rank
        monkeypatch.setattr(shortlists, "rank", lambda index, rows, d, counts, *a: ranked.append(rows[0, : counts[0]]) or rank(index, rows, d, counts, *a))
        query = f"{text} {terms[rare]}"
        index.query(query, k=10, max_distance=int(distance[holder]))
        assert holder in ranked[0]
        for bounds in ({"max_distance": int(distance[holder]) - 1}, {"min_distance": int(distance[holder]) + 1}):
            ranked.clear()
            index.query(query, k=10, **bounds)
            assert ranked and not any(holder in r for r in ranked if len(r) < len(index))


def test_train_sample_trains_on_a_sample_and_encodes_everything(copy):
    sampled = Index.build([str(copy / "corpus")], copy / "s.db", train_sample=20, **TINY)
    again = Index.build([str(copy / "corpus")], copy / "s2.db", train_sample=20, **TINY)
    whole = Index.build([str(copy / "corpus")], copy / "w.db", **TINY)
    try:
        assert sampled.summary.n_trained == 20 and len(sampled) == 60
        assert "model trained on a sample of 20" in sampled.summary.line()
        assert sampled.meta["n_trained"] == 20 and whole.meta["n_trained"] == 60
        assert "sample" not in whole.summary.line()
        np.testing.assert_array_equal(sampled.codes, again.codes)  # seeded: same sample, same model
        assert not np.array_equal(sampled.codes, whole.codes)  # a different training set, a different model
        assert len(sampled.query("space shuttle orbit", k=60)) == 60  # every document is searchable
    finally:
        for index in (sampled, again, whole):
            index.close()
    bigger = Index.build([str(copy / "corpus")], copy / "b.db", train_sample=1000, **TINY)
    assert bigger.summary.n_trained == 60
    bigger.close()
    # The command line's default is the library's.
    from semhash.api import DEFAULT_TRAIN_SAMPLE
    from semhash.cli import index as index_command

    assert {p.name: p.default for p in index_command.params}["train_sample"] == DEFAULT_TRAIN_SAMPLE
    assert inspect.signature(build_index).parameters["train_sample"].default == DEFAULT_TRAIN_SAMPLE
    with pytest.raises(BuildError, match="--train-sample must be at least 10, got 3"):
        build_index([str(copy / "corpus")], copy / "x.db", train_sample=3, **TINY)
    assert not (copy / "x.db").exists()


def test_an_index_reads_texts_as_it_was_built_to(copy):
    # Indexes built before messages were read as Subject + body have no meta "text":
    # they keep counting whole texts, headers included, for queries and updates alike.
    post = "From: someone@space.example.org\nSubject: shuttle orbit\nOrganization: NASA\n\nlaunch window"
    with Index.open(copy / "index.db") as index:
        assert index.meta["text"] == "content" and not index.whole_text
        new_style = index.encode([post])
    conn = sqlite3.connect(copy / "index.db")
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'text'")
    conn.close()
    with Index.open(copy / "index.db") as index:
        assert index.whole_text
        whole = count_words([post], index.words, whole_text=True, stem=index.stem)
        np.testing.assert_array_equal(index.encode([post])[2], whole.sum(axis=1))
        assert index.encode([post])[2][0] > new_style[2][0]  # the headers' known words count too
        assert len(index.query("space shuttle orbit", k=3)) == 3


def test_an_index_keeps_the_encoders_only(corpus_and_db):
    conn = sqlite3.connect(corpus_and_db / "index.db")
    names = [name for (name,) in conn.execute("SELECT name FROM weights")]
    conn.close()
    assert names and all(".encoder" in name for name in names)  # nothing reads the decoders
    with Index.open(corpus_and_db / "index.db") as index:
        assert index.query("space shuttle orbit", k=3)


def test_added_documents_are_ranked_by_their_words_too(copy):
    text = "The shuttle launch put the satellite in orbit. Shuttle orbit again: zzunknownword."
    (copy / "corpus" / "sci.space" / "zz-new").write_text(text)
    with Index.open(copy / "index.db") as index:
        index.add([str(copy / "corpus")])
        blob = index.stored.conn.execute("SELECT terms FROM documents WHERE id = 'sci.space/zz-new'").fetchone()[0]
        *words, unknown = content_words("shuttle launch satellite orbit zzunknownword", stem=index.stem)
        known = index.stored.terms([*words, unknown])
        ids, weights = semhash.rerank.from_blob(blob)
        # Its vector uses the index's terms (the unknown word is not one of them).
        assert unknown not in known and set(ids.tolist()) == {i for i, _ in known.values()}
        assert np.linalg.norm(weights) == pytest.approx(1.0)
        # Its own text finds it first: same words, same code.
        assert index.query_many([text], k=1, documents=True)[0][0].id == "sci.space/zz-new"


def _neighbour_lists(db) -> dict[str, list[str]]:
    conn = sqlite3.connect(db)
    ids = dict(conn.execute("SELECT rowid, id FROM documents"))
    lists = {
        ids[r]: [ids.get(n, n) for n in semhash.rerank.neighbours_from_blob(b).tolist()] if b is not None else None
        for r, b in conn.execute("SELECT rowid, neighbours FROM documents")
    }
    conn.close()
    return lists


def test_every_document_gets_its_neighbours(corpus_and_db):
    lists = _neighbour_lists(corpus_and_db / "index.db")
    assert len(lists) == 60
    for doc, found in lists.items():
        # 59 others, at most NEIGHBOURS of them, never itself, each once.
        assert len(found) == min(59, semhash.rerank.NEIGHBOURS) and doc not in found and len(set(found)) == len(found)
    # Neighbours share their document's topic far more often than chance (1/3).
    same = np.mean([doc.split("/")[0] == n.split("/")[0] for doc, found in lists.items() for n in found[:5]])
    assert same > 0.6


def _refill_neighbours(index) -> None:
    """Every neighbour list of the index emptied (as a build leaves them) and found again."""
    index.stored.conn.close()
    with sqlite3.connect(index.stored.path) as conn:
        conn.execute("UPDATE documents SET neighbours = NULL")
    conn.close()
    index._reopen()
    graph.fill_neighbours(index)


def test_a_document_s_neighbours_come_from_its_ball_and_its_rarest_terms_holders(copy, monkeypatch):
    """With a ball of 10 of the 60 posts, each post's neighbours are found in its
    ball only when rerank.RARE_TERMS is 0; otherwise the posts holding its rarest
    terms are candidates too."""
    from semhash import search

    monkeypatch.setattr(semhash.rerank, "NEIGHBOUR_SHORTLIST", 10)
    outside = {}
    for rare_terms in (0, semhash.rerank.RARE_TERMS):
        monkeypatch.setattr(semhash.rerank, "RARE_TERMS", rare_terms)
        with Index.open(copy / "index.db") as index:
            _refill_neighbours(index)
            balls, _, counts, _ = search.search_many(index.table, index.codes, index.table.addresses, index.codes, 10, shortlist=10)
            ids = index.stored.ids(index.rowids.tolist())
        lists = _neighbour_lists(copy / "index.db")
        outside[rare_terms] = sum(
            n not in {ids[j] for j in ball[:count]} for i, (ball, count) in enumerate(zip(balls, counts)) for n in lists[ids[i]]
        )
    assert outside[0] == 0 and outside[semhash.rerank.RARE_TERMS] > 0


def test_neighbour_lists_are_the_same_in_one_batch_or_in_pipelined_batches(copy, monkeypatch):
    """Batches of 7 go through both stages side by side (this thread shortlists the
    next while another ranks the one before): the lists of one batch of all 60."""
    found = {}
    for batch in (4096, 7):
        monkeypatch.setattr(graph, "BATCH", batch)
        with Index.open(copy / "index.db") as index:
            _refill_neighbours(index)
        found[batch] = _neighbour_lists(copy / "index.db")
    assert found[7] == found[4096] and all(found[7].values())


def test_pipelined_keeps_the_order_and_one_item_ahead():
    from concurrent.futures import ThreadPoolExecutor

    made = []

    def items():
        for i in range(5):
            made.append(i)
            yield i

    with ThreadPoolExecutor(1) as pool:
        results = graph.pipelined(pool, lambda i: i * i, items())
        assert next(results) == 0 and made == [0, 1]  # the next item was made meanwhile
        assert list(results) == [1, 4, 9, 16]


def test_every_stored_vector_packs_in_rowid_order(corpus_and_db):
    with Index.open(corpus_and_db / "index.db") as index:
        rowids = index.rowids.tolist()
        blobs = index.stored.term_vectors(rowids)
        expected = semhash.rerank.pack([semhash.rerank.from_blob(blobs.get(r)) for r in rowids])
        n_bytes, blobs = index.stored.all_term_blobs()
        for want, got in zip(expected, semhash.rerank.pack_blobs(blobs, n_bytes)):
            np.testing.assert_array_equal(want, got)
        assert expected[0][-1] > 1000  # the vectors are not all empty


def test_an_update_finds_the_neighbours_of_new_and_changed_documents(copy):
    before = _neighbour_lists(copy / "index.db")
    text = "The shuttle launch put the satellite in orbit. Shuttle orbit again."
    (copy / "corpus" / "sci.space" / "zz-new").write_text(text)
    changed = sorted((copy / "corpus" / "rec.sport.hockey").iterdir())[0]
    changed.write_text("Goalie and playoffs: the hockey season " * 5)
    with Index.open(copy / "index.db") as index:
        index.add([str(copy / "corpus")])
        assert index.n_neighbours == semhash.rerank.NEIGHBOURS
    after = _neighbour_lists(copy / "index.db")
    assert len(after["sci.space/zz-new"]) == semhash.rerank.NEIGHBOURS
    assert after[f"rec.sport.hockey/{changed.name}"] != before[f"rec.sport.hockey/{changed.name}"]
    unchanged = [d for d in before if d != f"rec.sport.hockey/{changed.name}"]
    assert all(after[d] == before[d] for d in unchanged)  # computed once, kept


@pytest.mark.parametrize("by_table", [True, False])
def test_the_ranking_reads_neighbours_among_the_shortlisted(copy, monkeypatch, by_table):
    if not by_table:  # rowids too sparse for a table: binary searches
        monkeypatch.setattr(shortlists, "_TABLE_SPAN_PER_DOCUMENT", 0)
        monkeypatch.setattr(shortlists, "_TABLE_SPAN_MIN", 0)
    with Index.open(copy / "index.db") as index:
        gone = index.query("space shuttle orbit launch", k=1)[0].id
        with IndexWriter(copy / "index.db") as writer:  # what `semhash index --prune` does
            writer.delete([gone])
        index.query("space shuttle orbit launch", k=1)  # reloads the index
        lists = _neighbour_lists(copy / "index.db")
        ids = index.stored.ids(index.rowids)
        # _neighbour_lists leaves a removed document's rowid as an int.
        assert len(ids) == 59 and sum(isinstance(n, int) for found in lists.values() for n in found) > 0
        shortlisted = np.arange(0, 59, 2)  # every other document
        _, neighbours = shortlists.ranking_rows(index, shortlisted)
        local = {ids[p]: i for i, p in enumerate(shortlisted.tolist())}
        for i, p in enumerate(shortlisted.tolist()):
            # A removed document, or one outside the shortlist, is no neighbour (-1).
            expected = [local.get(n, -1) for n in lists[ids[p]]]
            expected += [-1] * (semhash.rerank.NEIGHBOURS - len(expected))
            assert neighbours[i].tolist() == expected


def test_filters_only_filter_the_ranking(corpus_and_db):
    with Index.open(corpus_and_db / "index.db") as index:
        text = "hockey goalie playoffs and the space shuttle"
        ranked = index.query(text, k=60)
        cut = sorted(h.distance for h in ranked)[30]
        assert index.query(text, k=60, max_distance=cut) == [h for h in ranked if h.distance <= cut]
        assert index.query(text, k=5, min_distance=cut) == [h for h in ranked if h.distance >= cut][:5]


@pytest.mark.parametrize("n_texts", [3, 40])
def test_queries_read_the_same_in_numpy_and_on_the_kernels(corpus_and_db, tiny_corpus, monkeypatch, n_texts):
    texts = [p.read_text(encoding="latin-1") for p in sorted((tiny_corpus / "sci.space").iterdir())][:n_texts]
    texts[0] = "Café orbit: the shuttle's launch, naïve"  # not ASCII: tokenized in Python either way
    results = {}
    with Index.open(corpus_and_db / "index.db") as index:
        for on_kernels in (False, True):
            monkeypatch.setattr(semhash.lazy, "use_kernels", lambda cost, kernel=None, on=on_kernels: on)
            index._terms = None
            results[on_kernels] = index.query_many(texts, k=10, documents=True)
    assert all(len(hits) == 10 for hits in results[True])
    for numpy_hits, kernel_hits in zip(results[False], results[True]):
        assert [h._replace(score=None) for h in numpy_hits] == [h._replace(score=None) for h in kernel_hits]
        # Scores agree to float32 rounding: the paths add some products in other orders.
        np.testing.assert_allclose([h.score for h in numpy_hits], [h.score for h in kernel_hits], rtol=1e-5, atol=1e-6)


def test_the_codes_alone_rank_the_same_in_numpy_and_on_the_kernels(corpus_and_db, tiny_corpus, monkeypatch):
    # Scores to the last bit, ties included: near-ties once came out swapped between
    # a machine whose numba cache held the kernel and one that ranked in numpy.
    texts = [p.read_text(encoding="latin-1") for p in sorted(tiny_corpus.glob("*/*"))][:60]
    texts += ["orbit", "space shuttle orbit", "hockey team season"]
    results = {}
    with Index.open(corpus_and_db / "index.db") as index:
        for on_kernels in (False, True):
            monkeypatch.setattr(semhash.lazy, "use_kernels", lambda cost, kernel=None, on=on_kernels: on)
            results[on_kernels] = index.query_many(texts, k=20, codes_only=True, skip_empty=True)
    assert sum(len(hits) for hits in results[True]) > 20 * 50
    assert results[False] == results[True]


def test_similar_ranks_as_a_query_of_the_document_does(corpus_and_db, tiny_corpus):
    path = sorted((tiny_corpus / "sci.space").iterdir())[3]
    doc = f"sci.space/{path.name}"
    with Index.open(corpus_and_db / "index.db") as index:
        as_query = [h for h in index.query_many([path.read_text(encoding="latin-1")], k=11, documents=True)[0]]
        assert as_query[0].id == doc
        assert index.similar(doc, k=10) == as_query[1:]


LABELLED = ["space shuttle orbit", "hockey team season", "graphics image software", "nasa launch and the goalie"]


def _allowed_hits(hits, labels, k):
    return [h for h in hits if set(h.labels) & set(labels)][:k]


@pytest.mark.parametrize("shortlist, kernels", [(60, True), (25, True), (25, False)])
def test_the_codes_alone_rank_their_ball_by_the_bits_its_nearest_share(corpus_and_db, monkeypatch, shortlist, kernels):
    """--codes-only: the Hamming ball grown to Index.shortlist documents, the best of
    them by code distance, ranked by the bits (codes' and addresses') their nearest
    agree on (a naive twin: tests/naive.py), by the kernels or numpy."""
    monkeypatch.setattr(Index, "shortlist", shortlist)
    monkeypatch.setattr(semhash.lazy, "use_kernels", lambda *args, **kwargs: kernels)
    with Index.open(corpus_and_db / "index.db") as index:
        position = {rowid: i for i, rowid in enumerate(index.rowids.tolist())}
        ids = {doc_id: position[rowid] for rowid, doc_id in index.stored.conn.execute("SELECT rowid, id FROM documents")}
        m = min(shortlists.FEEDBACK_CODES, len(index) // 10)
        reordered = False
        for text in LABELLED:
            (address,), code, _ = index.encode([text], lift=True, query=True)
            radius = next(r for r in range(29) if len(naive.ball(index.table.addresses, address, r)) >= shortlist)
            ball = naive.ball(index.table.addresses, address, radius)
            near = sorted(map(int, ball), key=lambda row: (naive.hamming(index.codes[[row]], code[0])[0], row))[:shortlist]
            scores = naive.shared_bit_scores(
                index.codes, index.table.addresses, code[0], address, near[:m], near, shortlists.QUERY_BITS, shortlists.ADDRESS_BITS,
                shortlists._SHARED_BIT_UNIT,
            )
            hits = index.query(text, k=10, codes_only=True)
            got = [scores[near.index(ids[h.id])] for h in hits]
            assert got == pytest.approx(sorted(scores, reverse=True)[:10], abs=1e-4)
            assert [h.distance for h in hits] == [naive.hamming(index.codes[[ids[h.id]]], code[0])[0] for h in hits]
            reordered |= [h.distance for h in hits] != sorted(h.distance for h in hits)
        assert reordered  # the bits' weights, not the distance alone, ranked some of them


@pytest.mark.parametrize("in_full", [True, False])  # all allowed ranked / the shortlist grown
def test_labels_keep_the_ranking_s_allowed_hits(corpus_and_db, monkeypatch, in_full):
    """--label: the ranking's hits carrying a label, in its order, k of them; the
    unfiltered ranking (every post) then holds every allowed one."""
    monkeypatch.setattr(filters, "LABELS_RANKED_IN_FULL", 2000 if in_full else 0)
    with Index.open(corpus_and_db / "index.db") as index:
        for codes_only in (False, True):
            for text in LABELLED:
                ranked = index.query(text, k=60, codes_only=codes_only)
                for labels in (["sci.space"], ["rec.sport.hockey", "comp.graphics"], "comp.graphics"):
                    wanted = [labels] if isinstance(labels, str) else labels
                    hits = index.query(text, k=5, labels=labels, codes_only=codes_only)
                    assert len(hits) == 5 and all(set(h.labels) & set(wanted) for h in hits)
                    assert hits == _allowed_hits(ranked, wanted, 5)
                    # With distance bounds too: both filters, in the ranking's order.
                    cut = sorted(h.distance for h in ranked)[30]
                    bounded = index.query(text, k=5, labels=labels, max_distance=cut, codes_only=codes_only)
                    assert bounded == _allowed_hits([h for h in ranked if h.distance <= cut], wanted, 5)
            batch = index.query_many(LABELLED, k=7, labels=["sci.space"], codes_only=codes_only)
            assert batch == [index.query(t, k=7, labels=["sci.space"], codes_only=codes_only) for t in LABELLED]


def test_few_allowed_documents_join_a_shortlist_that_lacks_them(corpus_and_db, monkeypatch):
    """A ball smaller than the index (20 of 60 posts here) is joined by every
    allowed post: k allowed hits even where the ball holds fewer."""
    monkeypatch.setattr(semhash.rerank, "SHORTLIST", 5)
    monkeypatch.setattr(Index, "shortlist", 5)
    with Index.open(corpus_and_db / "index.db") as index:
        for text in LABELLED:
            for label in ("sci.space", "rec.sport.hockey", "comp.graphics"):
                hits = index.query(text, k=20, labels=[label])
                assert len(hits) == 20 and all(h.labels == (label,) for h in hits)
                assert index.query_many([text], k=20, labels=[label]) == [hits]


def test_similar_with_labels(corpus_and_db, tiny_corpus):
    path = sorted((tiny_corpus / "sci.space").iterdir())[3]
    doc = f"sci.space/{path.name}"
    with Index.open(corpus_and_db / "index.db") as index:
        for labels in (["comp.graphics"], ["sci.space"], ["sci.space", "rec.sport.hockey"]):
            hits = index.similar(doc, k=5, labels=labels)
            assert len(hits) == 5 and doc not in [h.id for h in hits]
            assert hits == _allowed_hits(index.similar(doc, k=59), labels, 5)
            text = path.read_text(encoding="latin-1")
            assert index.similar_to_text(text, k=5, labels=labels) == _allowed_hits(index.similar_to_text(text, k=59), labels, 5)
            assert index.similar_to_file(path, k=5, labels=labels) == index.similar_to_text(text, k=5, labels=labels)


def test_a_query_of_words_only_the_terms_know_keeps_its_allowed_holders(corpus_and_db):
    with Index.open(corpus_and_db / "index.db") as index:
        terms, _ = index.stored.all_terms()
        hits = None
        for word in sorted(t for t in terms if t not in index.words and t.isalpha()):
            found = index.query_many([word], k=60, skip_empty=True)[0]
            if found and len({h.labels for h in found}) > 1:
                hits = found
                break
        assert hits is not None
        label = hits[-1].labels[0]
        assert index.query(word, k=60, labels=[label]) == _allowed_hits(hits, [label], 60)


def test_an_unknown_label_is_an_error_naming_the_index_s_labels(corpus_and_db):
    with Index.open(corpus_and_db / "index.db") as index:
        with pytest.raises(QueryError, match=r"'sci\.spce'.*its labels: .*sci\.space"):
            index.query("orbit", labels=["sci.space", "sci.spce"])
        with pytest.raises(QueryError, match="'nope'"):
            index.similar(index.query("orbit", k=1)[0].id, labels="nope")
        with pytest.raises(QueryError, match="must be strings"):
            index.query("orbit", labels=[3])
        assert index.query("orbit", k=3, labels=[]) == index.query("orbit", k=3)


def test_a_document_holding_every_word_of_a_short_query_is_in_its_top_10(copy, monkeypatch):
    """Issue 26: a document holding every word of a query of a few words was ranked
    below hundreds holding one ("ssh server": openssh-server at rank 308). Here a
    catalogue line ends a long hockey post among the 60 posts; every query of 1 to
    4 of its words, generic ones ("server", "remote") included, finds it in the top
    10, and holders of a word of the query outside the ball are ranked."""
    import itertools

    from semhash import rerank

    monkeypatch.setattr(rerank, "SHORTLIST", 5)  # a ball of 10 of the 61 documents: the words must bring it
    monkeypatch.setattr(rerank, "RARE_TERMS", 1)  # not the rarest terms' holders alone
    # Its words buried in a long post of another group: its cosine with a few words is low.
    hockey = max((copy / "corpus" / "rec.sport.hockey").iterdir(), key=lambda p: p.stat().st_size)
    line = "openssh server: secure shell ssh server for remote access to machines"
    (copy / "corpus" / "sci.space" / "openssh").write_text(hockey.read_text(encoding="latin-1") + line + "\n")
    with Index.build([str(copy / "corpus")], copy / "with-line.db", **TINY) as index:
        words = ["openssh", "server", "ssh", "remote", "machines", "access", "secure", "shell"]
        for n in range(1, 5):
            for chosen in itertools.combinations(words, n):
                ids = [h.id for h in index.query(" ".join(chosen), k=10)]
                assert "sci.space/openssh" in ids, chosen


# -- stemming ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stemmed_db(corpus_and_db, tmp_path_factory):
    root = tmp_path_factory.mktemp("stemmed")
    Index.build([str(corpus_and_db / "corpus")], root / "stem.db", stem=True, **TINY).close()
    return root / "stem.db"


@pytest.fixture(scope="module")
def plain_db(corpus_and_db, tmp_path_factory):
    """An index that counts words as written (as every index built before --stem)."""
    root = tmp_path_factory.mktemp("plain")
    Index.build([str(corpus_and_db / "corpus")], root / "plain.db", stem=False, **TINY).close()
    return root / "plain.db"


def test_a_stemming_index_reads_every_form_of_a_word_alike(stemmed_db, plain_db):
    with Index.open(stemmed_db) as index:
        assert index.meta["stem"] is True and index.meta["build_options"]["stem"] is True and index.stem
        assert "orbit" in index.words and "orbits" not in index.words
        forms, base = "Shuttles orbiting; the launches", "shuttle orbit launch"
        for got, want in zip(index.encode([forms]), index.encode([base])):
            np.testing.assert_array_equal(got, want)  # the same words, so the same codes
        assert [h[:2] for h in index.query(forms, k=10)] == [h[:2] for h in index.query(base, k=10)]
        assert index.info()["stem"] is True
        index.check_options(stem=True)
        with pytest.raises(ModelMismatch, match="stem=False"):
            index.check_options(stem=False)
    with Index.open(plain_db) as plain:  # built without: forms stay apart
        assert not plain.stem and plain.meta["stem"] is False and plain.info()["stem"] is False
        assert not np.array_equal(plain.encode([forms])[1], plain.encode([base])[1])


def test_documents_added_to_a_stemming_index_are_stemmed(stemmed_db, tmp_path):
    shutil.copy(stemmed_db, tmp_path / "s.db")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("Satellites orbiting: the shuttles launched zzunknownwords.")
    with Index.open(tmp_path / "s.db") as index:
        index.add([str(tmp_path / "new")])
        row = index.stored.conn.execute("SELECT counts, terms FROM documents WHERE id = 'a'").fetchone()
        ids, _ = semhash.rerank.from_blob(row[1])
        known = index.stored.terms(["satellit", "orbit", "shuttl", "launch", "zzunknownword", "satellites"])
        assert sorted(ids.tolist()) == sorted(i for t, (i, _) in known.items() if t != "zzunknownword")
        assert "satellites" not in known and "orbit" in row[0] and "orbiting" not in row[0]


def test_an_index_without_the_stem_key_queries_as_before(plain_db, tmp_path):
    # Indexes built before the option have no meta "stem": they count words as written.
    query = "Shuttles orbiting; the launches"
    db = shutil.copy(plain_db, tmp_path / "old.db")
    with Index.open(db) as index:
        before = (index.encode([query]), index.query(query, k=10))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'stem'")
        options = conn.execute("SELECT value FROM meta WHERE key = 'build_options'").fetchone()[0]
        conn.execute("UPDATE meta SET value = json_remove(?, '$.stem') WHERE key = 'build_options'", (options,))
    conn.close()
    with Index.open(db) as index:
        assert "stem" not in index.meta and "stem" not in index.meta["build_options"] and not index.stem
        for got, want in zip(index.encode([query]), before[0]):
            np.testing.assert_array_equal(got, want)
        assert index.query(query, k=10) == before[1]
        with pytest.raises(ModelMismatch, match="stem=True"):  # an update may not start stemming it
            index.check_options(stem=True)


def test_the_command_lines_stem_default_is_the_librarys():
    from semhash.api import STEM
    from semhash.cli import index as index_command

    assert {p.name: p.default for p in index_command.params}["stem"] == STEM
    assert inspect.signature(build_index).parameters["stem"].default == STEM
