"""Term codes (semhash.termcodes): the word tables a build stores, and queries'
codes mixed with their terms' codes."""

import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from semhash import codes, encoding, termcodes
from semhash.api import Index

TINY = dict(vocab_size=300, address_bits=8, code_bits=32, hidden_sizes=(32,), n_epochs_pretrain=5, n_epochs_finetune=5)


@pytest.fixture(scope="module")
def index(tiny_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("termcodes")
    shutil.copytree(tiny_corpus, root / "corpus")
    with Index.build([str(root / "corpus")], root / "index.db", **TINY) as built:
        pass
    with Index.open(root / "index.db") as opened:
        yield opened


def test_head_bits_unpack_what_the_index_packs():
    rng = np.random.default_rng(0)
    address_bits, code_bits = rng.random((5, 8)) < 0.5, rng.random((5, 70)) < 0.5
    got = termcodes.head_bits(codes.to_addresses(address_bits), codes.pack_codes(code_bits), (8, 70))
    assert (got[0] == address_bits).all() and (got[1] == code_bits).all()


def test_a_word_table_is_the_mean_code_of_the_documents_holding_the_word(monkeypatch):
    X = sp.csr_matrix(np.array([[2, 0, 1], [1, 0, 0], [0, 0, 3]], np.float32))
    bits = [np.array([[1, 0], [1, 1], [0, 0]], bool), np.array([[1], [0], [1]], bool)]
    packed = codes.to_addresses(bits[0]), codes.pack_codes(bits[1])
    tables = termcodes.word_tables(X, *packed, (2, 1))
    # word 0: documents 0 and 1; word 1: none; word 2: documents 0 and 2
    assert tables["head0.encoder.words"].tolist() == [[1, 0], [0, 0], [0, -1]]
    assert tables["head1.encoder.words"].tolist() == [[0], [0], [1]]
    # Documents taken a block at a time (bounded memory): the same tables.
    monkeypatch.setattr(termcodes, "_ROWS_AT_ONCE", 2)
    blocks = termcodes.word_tables(X, *packed, (2, 1))
    assert all((blocks[name] == table).all() for name, table in tables.items())


def test_the_build_stores_the_word_tables_of_its_documents(index):
    widths = termcodes.widths(index)
    assert index.word_tables.shape == (len(index.vocabulary), sum(widths))
    # naive: every document's vocabulary words, from its stored text
    held = np.zeros((len(index), len(index.vocabulary)), bool)
    rowids = index.rowids.tolist()
    for rowid, path in index.stored.conn.execute("SELECT rowid, path FROM documents"):
        text = encoding.read(index, [open(path, encoding="latin-1").read()])
        held[rowids.index(rowid)] = encoding._counts(index, text)[0][0] > 0
    signs = np.concatenate([2.0 * b - 1.0 for b in termcodes.head_bits(index.table.addresses, index.codes, widths)], 1)
    df = held.sum(0)
    expected = (held.T.astype(float) @ signs) / np.maximum(df, 1)[:, None]
    assert np.allclose(index.word_tables, expected, atol=1e-5)


def test_a_query_of_one_rare_term_gets_the_code_of_the_document_holding_it(index):
    terms, _ = index.stored.all_terms()
    held = index.stored.postings(range(len(terms)))
    rare = [t for t, (df, rowids) in held.items() if df == 1 and terms[t] not in index.words and terms[t].isalpha()]
    term = terms[rare[0]]
    holder = np.searchsorted(index.rowids, np.frombuffer(held[rare[0]][1], "<i4"))[0]
    addresses, long_codes, known, termed = encoding.encode_query(index, encoding.read(index, [term]), lift=True)
    assert known[0] == 0 and termed[0]
    assert addresses[0] == index.table.addresses[holder] and (long_codes[0] == index.codes[holder]).all()
    # The codes alone find it (the codes' feedback orders the hits, not the distance).
    hits = index.query(term, k=10, codes_only=True)
    assert index.stored.ids([int(index.rowids[holder])])[0] in {h.id for h in hits if h.distance == 0}


def test_a_long_query_keeps_its_encoders_code_and_a_short_one_moves(index):
    text = open(index.stored.conn.execute("SELECT path FROM documents").fetchone()[0], encoding="latin-1").read()
    read = encoding.read(index, [" ".join([text] * 100), " ".join(text.split()[-3:])])
    own = encoding.encode_read(index, read, lift=True)
    mixed = encoding.encode_query(index, read, lift=True)
    assert own[2][0] / (own[2][0] + termcodes.PRIOR) > termcodes.ENCODER_ENOUGH  # long enough
    assert own[0][0] == mixed[0][0] and (own[1][0] == mixed[1][0]).all()
    assert mixed[3][1]


def test_an_index_without_word_tables_codes_queries_as_before(index, monkeypatch):
    read = encoding.read(index, ["space shuttle orbit"])
    monkeypatch.setattr(index, "word_tables", None)
    own = encoding.encode_read(index, read, lift=True)
    mixed = encoding.encode_query(index, read, lift=True)
    assert own[0][0] == mixed[0][0] and (own[1][0] == mixed[1][0]).all() and not mixed[3][0]


def test_rarer_terms_summed_a_few_holders_at_a_time_give_the_same_codes(index, monkeypatch):
    terms, _ = index.stored.all_terms()
    texts = [" ".join(terms[i : i + 3]) for i in range(0, len(terms), 7)]
    read = encoding.read(index, texts)
    whole = encoding.encode_query(index, read, lift=True)
    monkeypatch.setattr(termcodes, "_HOLDERS_AT_ONCE", 2)
    parts = encoding.encode_query(index, read, lift=True)
    assert whole[3].any() and all((a == b).all() for a, b in zip(whole, parts))
