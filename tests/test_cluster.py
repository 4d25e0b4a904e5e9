"""``semhash index --workers N`` / ``--scheduler ADDRESS``: a build's counting and
encoding on a Dask cluster (:mod:`semhash.cluster`) give the index one process
gives; without Dask, one line says what to install."""

import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from semhash import build, cluster
from semhash.vocab import count_terms, merge_terms

from conftest import SAMPLE, TINY_MODEL, run

# The sample's 1,500 posts in several tasks of each kind, so that both workers
# count and encode and the merge has parts to put in order.
SMALL_TASKS = {"DOCS_PER_TASK": 400, "ENCODE_CHUNK": 256, "CHUNKS_PER_TASK": 2}
SAMPLE_MODEL = [*TINY_MODEL, "--epochs-pretrain", "1", "--epochs-finetune", "1", "--train-sample", "300"]


def _stored(db) -> dict:
    with sqlite3.connect(db) as con:
        documents = con.execute("SELECT id, address, code, counts, n_words, terms FROM documents ORDER BY rowid").fetchall()
        return {
            "documents": documents,
            "vocabulary": con.execute("SELECT * FROM vocabulary ORDER BY rowid").fetchall(),
            "terms": con.execute("SELECT * FROM terms ORDER BY rowid").fetchall(),
            "meta": {k: v for k, v in con.execute("SELECT key, value FROM meta") if k != "created"},
        }


def test_two_workers_build_the_sample_as_one_process_does(tmp_path, monkeypatch):
    for name, value in SMALL_TASKS.items():
        monkeypatch.setattr(build, name, value)
    train = SAMPLE / "train"
    alone = run("index", train, "-d", tmp_path / "alone.db", "-s", *SAMPLE_MODEL)
    assert alone.exit_code == 0, alone.output
    environ = dict(os.environ)
    on_two = run("index", train, "-d", tmp_path / "two.db", "-s", "--workers", "2", *SAMPLE_MODEL)
    assert on_two.exit_code == 0, on_two.output
    # Dask's nannies set the workers' NUMBA_NUM_THREADS=1 here too, and numba then failed later tests.
    assert dict(os.environ) == environ
    one, two = _stored(tmp_path / "alone.db"), _stored(tmp_path / "two.db")
    assert len(one["documents"]) == 1500
    assert len({code for _, _, code, *_ in one["documents"]}) > 100  # codes that tell posts apart
    assert [d[:3] for d in two["documents"]] == [d[:3] for d in one["documents"]]  # ids, addresses, codes
    assert two == one


def test_counting_in_batches_gives_one_pass_counts():
    docs = [["orbit", "shuttle", "orbit"], [], ["goalie"], ["zebra", "orbit"], [], ["é", "goalie", "b"]]
    terms, full = count_terms(docs)

    def batch(rows):
        try:
            return count_terms(rows)
        except ValueError:  # a batch without a word, as a worker returns it
            return [], sp.csr_matrix((len(rows), 0), dtype=np.float32)

    merged_terms, merged = merge_terms([batch(docs[:2]), batch(docs[2:3]), batch(docs[3:5]), batch(docs[5:])])
    assert merged_terms == terms
    assert (merged.indptr.dtype, merged.indices.dtype, merged.data.dtype) == (full.indptr.dtype, full.indices.dtype, full.data.dtype)
    assert np.array_equal(merged.indptr, full.indptr) and np.array_equal(merged.indices, full.indices)
    assert np.array_equal(merged.data, full.data)
    with pytest.raises(ValueError, match="empty vocabulary"):
        merge_terms([batch([[]]), batch([[], []])])


def test_workers_without_dask_say_so_in_one_line(tmp_path, monkeypatch, tiny_corpus):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    result = run("index", tiny_corpus, "-d", tmp_path / "x.db", "--workers", "2", *TINY_MODEL)
    assert (result.exit_code, result.output) == (2, f"Error: {cluster.DASK_MISSING}\n")
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written, no lock left


def test_a_scheduler_that_cannot_be_reached_is_one_line(tmp_path, monkeypatch, tiny_corpus):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    result = run("index", tiny_corpus, "-d", tmp_path / "x.db", "--scheduler", "tcp://127.0.0.1:9", *TINY_MODEL)
    assert result.exit_code == 2
    assert result.output.startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:9: ")
    assert result.output.count("\n") == 1
    assert not (tmp_path / "x.db").exists()


def test_workers_and_scheduler_together_are_refused(tmp_path, tiny_corpus):
    result = run("index", tiny_corpus, "-d", tmp_path / "x.db", "--workers", "2", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert result.output.startswith("Error: --workers starts a Dask cluster and --scheduler names one")


def test_no_other_command_imports_dask(built):
    # --workers is the only way in: a query (or an update) must not pay for Dask's import.
    code = (
        "import atexit, sys; from semhash.cli import cli; "
        "atexit.register(lambda: print('dask' in sys.modules, 'distributed' in sys.modules, file=sys.stderr)); "
        f"cli(['query', '-d', {str(built / 'index.db')!r}, 'orbit'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and "sci.space/" in done.stdout
    assert done.stderr.split() == ["False", "False"]
