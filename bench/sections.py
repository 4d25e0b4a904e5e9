"""Shared by the benchmark scripts: rewrite one marked section of BENCHMARKS.md
(leaving the rest of the file untouched) and name the CPU it ran on.

Each benchmark script owns the lines between its ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` markers; the file is replaced atomically.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path


def write_section(path: Path, section: str, start: str, end: str) -> None:
    """Replace the lines from ``start`` to ``end`` of ``path`` by ``section`` (which
    includes both markers), or append it when the markers are missing."""
    if path.exists():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        starts = [i for i, line in enumerate(lines) if line.strip() == start]
        ends = [i for i, line in enumerate(lines) if line.strip() == end]
        if len(starts) > 1 or len(ends) > 1 or len(starts) != len(ends) or (starts and ends[0] < starts[0]):
            sys.exit(f"error: {path} has unbalanced {start} / {end} lines; fix them by hand")
        if starts:
            new = "".join(lines[: starts[0]]) + section + "".join(lines[ends[0] + 1 :])
        else:
            sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
            new = text + sep + section
    else:
        new = "# Benchmarks\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(new)
    if path.exists():
        shutil.copymode(path, tmp)
    else:
        os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's name elsewhere)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(root: Path) -> dict:
    """``{"git_commit": short hash, "git_dirty": tracked files changed}`` of the
    checkout at ``root`` (both None outside git); read-only queries. What the
    benchmarks themselves write (BENCHMARKS.md, docs' figures) does not count."""
    import subprocess

    state = {"git_commit": None, "git_dirty": None}
    git = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        status = subprocess.run(
            git + ["status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md", ":!docs/*.png"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return state
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (the ``cpu`` line of /proc/stat), or None."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of CPU time the hypervisor took from this VM between two
    :func:`cpu_times` readings (the 8th counter, "steal"): a VM that loses half its
    time runs everything about half as fast, whatever the code does."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    total = sum(after) - sum(before)
    return (after[7] - before[7]) / total if total > 0 else None
