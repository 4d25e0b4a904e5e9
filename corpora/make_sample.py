"""Cut the small 20 Newsgroups sample shipped in ``corpora/20news-sample``.

Run from the project root::

    python corpora/make_sample.py [PATH/TO/20news-bydate.tar.gz]

The sample is deterministic: for each chosen newsgroup it keeps the first
``N_TRAIN`` train posts and the first ``N_TEST`` test posts, ordered by their
numeric article id. Bytes are copied unchanged (headers included). The output
directory is replaced on every run so stale files never linger. Stdlib only.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TAR = PROJECT_ROOT / "../shared/corpora-src/20news-bydate/20news-bydate.tar.gz"
OUT_DIR = PROJECT_ROOT / "corpora" / "20news-sample"

GROUPS = (
    "comp.graphics",
    "rec.sport.hockey",
    "sci.med",
    "sci.space",
    "talk.politics.guns",
)
N_TRAIN = 300
N_TEST = 100
SPLITS = {"20news-bydate-train": ("train", N_TRAIN), "20news-bydate-test": ("test", N_TEST)}


def select_members(tar: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, str]]:
    """Pick the members to copy and their output paths.

    Parameters
    ----------
    tar : tarfile.TarFile
        The open 20news-bydate archive.

    Returns
    -------
    list of (TarInfo, str)
        Each chosen member with its destination ``<split>/<group>/<id>``,
        in split, group and numeric-id order.
    """
    found: dict[tuple[str, str], list[tuple[int, tarfile.TarInfo]]] = defaultdict(list)
    for member in tar.getmembers():
        parts = member.name.split("/")
        if not member.isfile() or len(parts) != 3:
            continue
        split_dir, group, doc_id = parts
        if split_dir in SPLITS and group in GROUPS and doc_id.isdigit():
            found[(split_dir, group)].append((int(doc_id), member))
    chosen = []
    for split_dir, (split, count) in SPLITS.items():
        for group in GROUPS:
            # Numeric, not lexical, order: article ids vary in length.
            members = sorted(found[(split_dir, group)], key=lambda pair: pair[0])
            if len(members) < count:
                sys.exit(f"only {len(members)} {split} posts in {group}, need {count}")
            chosen += [(m, f"{split}/{group}/{i}") for i, m in members[:count]]
    return chosen


def write_sample(tar_path: Path, out_dir: Path = OUT_DIR) -> int:
    """Write the sample under ``out_dir`` and return the total bytes written."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    total = 0
    with tarfile.open(tar_path, "r:gz") as tar:
        for member, rel in select_members(tar):
            data = tar.extractfile(member).read()
            dest = out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            total += len(data)
    return total


def main(argv: list[str]) -> None:
    """Entry point: optional first argument is the tarball path."""
    tar_path = Path(argv[0]) if argv else DEFAULT_TAR
    if not tar_path.is_file():
        sys.exit(f"tarball not found: {tar_path} (pass its path as the first argument)")
    total = write_sample(tar_path)
    print(f"wrote {total} bytes under {OUT_DIR.relative_to(PROJECT_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
