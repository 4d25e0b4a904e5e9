import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

SAMPLE = Path(__file__).resolve().parent.parent / "corpora" / "20news-sample"
GROUPS = ("comp.graphics", "rec.sport.hockey", "sci.space")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """20 real posts from each of 3 newsgroups of the shipped sample."""
    root = tmp_path_factory.mktemp("corpus")
    for group in GROUPS:
        files = sorted((SAMPLE / "train" / group).iterdir(), key=lambda p: int(p.name))[:20]
        (root / group).mkdir()
        for f in files:
            shutil.copy(f, root / group / f.name)
    return root


TINY_MODEL = [
    "--hidden", "32", "--address-bits", "8", "--code-bits", "32",
    "--epochs-pretrain", "5", "--epochs-finetune", "5", "--vocab-size", "300",
]


def run(*args, input=None):
    from semhash.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture(scope="session")
def built(tiny_corpus, tmp_path_factory):
    """corpus/ and index.db built from it with the tiny model, shared read-only."""
    root = tmp_path_factory.mktemp("reliability")
    shutil.copytree(tiny_corpus, root / "corpus")
    result = run("index", root / "corpus", "-d", root / "index.db", "-s", *TINY_MODEL)
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def work(built, tmp_path):
    """A private copy of ``built``."""
    shutil.copytree(built, tmp_path / "w")
    return tmp_path / "w"


def write_non_utf8_name(folder) -> None:
    """A post named ``caf\\xe9`` (not UTF-8) in ``folder``, or skip where the file
    system takes only UTF-8 names."""
    try:
        with open(os.path.join(os.fsencode(folder), b"caf\xe9"), "w") as f:
            f.write("orbit of the shuttle")
    except OSError:
        pytest.skip("this file system takes only UTF-8 names")
