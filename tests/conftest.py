import shutil
from pathlib import Path

import pytest

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
