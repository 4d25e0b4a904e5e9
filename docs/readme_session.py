"""Re-run every `$ ...` command of README.md's console blocks and paste the real output.

Keeps the README true: run it after changing anything users see.

    .venv/bin/python docs/readme_session.py            # rewrites README.md
    .venv/bin/python docs/readme_session.py --check    # exit 1 if an output changed

Commands run in order, in one scratch folder holding a link to ``corpora/``, with
``.venv/bin`` first on PATH. Their stdout and stderr are shown, minus progress bars.
Lines that are not commands (``$ make ...``, ``$ eval ...``) are left as written.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = ("make ", "eval ")
BAR = re.compile(r"\d+%\||\[\d+:\d+")  # tqdm: "45%|" or "[00:01"


def run(command: str, cwd: Path, env: dict) -> str:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True)
    lines = []
    for stream in (done.stdout, done.stderr):
        for line in stream.splitlines():
            line = line.split("\r")[-1]
            if line and not BAR.search(line):
                lines.append(line)
    return "\n".join(lines)


def refresh(text: str, cwd: Path, env: dict) -> str:
    out, lines, i, in_console = [], text.split("\n"), 0, False
    while i < len(lines):
        line = lines[i]
        out.append(line)
        if line.startswith("```console"):
            in_console = True
        elif line.startswith("```"):
            in_console = False
        elif in_console and line.startswith("$ ") and not line[2:].startswith(SKIP):
            command = re.sub(r"\s+#.*$", "", line[2:])
            i += 1
            while i < len(lines) and not lines[i].startswith(("$ ", "```")):
                i += 1  # drop the old output
            result = run(command, cwd, env)
            if result:
                out.append(result)
            continue
        i += 1
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether the README is up to date")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "80"}
    env.pop("SEMHASH_DB", None)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "corpora").symlink_to(ROOT / "corpora")
        (Path(scratch) / "docs").symlink_to(ROOT / "docs")
        new = refresh(readme.read_text(encoding="utf-8"), Path(scratch), env)
    if args.check:
        sys.exit(0 if new == readme.read_text(encoding="utf-8") else 1)
    readme.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
