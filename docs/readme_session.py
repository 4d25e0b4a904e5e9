"""Re-run every `$ ...` command of the docs' console blocks and paste the real output.

Keeps README.md and docs/usage.md true: run it after changing anything users see.

    .venv/bin/python docs/readme_session.py            # rewrites the files
    .venv/bin/python docs/readme_session.py --check    # exit 1 if an output changed

Commands run in order, README.md's first, then docs/usage.md's (which use the
index the README's demo built), in one scratch folder holding links to
``corpora/`` and ``docs/``, with ``.venv/bin`` first on PATH. Their stdout and
stderr are shown, minus progress bars. The commands between ``<!-- demo:start -->``
and ``<!-- demo:end -->`` run on a pseudo-terminal 80 columns wide, as `make demo`
runs for a person; the others through a pipe, as scripts see them. Lines that are
not commands (``$ make ...``, ``$ eval ...``) are left as written.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("README.md", "docs/usage.md")  # in the order their commands run
SKIP = ("make ", "eval ")
BAR = re.compile(r"\d+%\||\[\d+:\d+")  # tqdm: "45%|" or "[00:01"


def run(command: str, cwd: Path, env: dict, terminal: bool = False) -> str:
    if terminal:
        stdout, stderr = on_terminal(command, cwd, env)
    else:
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True)
        stdout, stderr = done.stdout, done.stderr
    lines = []
    for stream in (stdout, stderr):
        for line in stream.splitlines():
            line = line.split("\r")[-1]
            if line and not BAR.search(line):
                lines.append(line)
    return "\n".join(lines)


def on_terminal(command: str, cwd: Path, env: dict) -> tuple[str, str]:
    """Run ``command`` with its stdout on a pseudo-terminal (stderr to a file, so
    that progress bars cannot fill a pipe); return what each received."""
    leader, follower = pty.openpty()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=follower, stderr=err)
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        proc.wait()
        err.seek(0)
        return out.decode(), err.read().decode()


def refresh(text: str, cwd: Path, env: dict) -> str:
    out, lines, i, in_console, in_demo = [], text.split("\n"), 0, False, False
    while i < len(lines):
        line = lines[i]
        out.append(line)
        if line.strip() in ("<!-- demo:start -->", "<!-- demo:end -->"):
            in_demo = line.strip() == "<!-- demo:start -->"
        elif line.startswith("```console"):
            in_console = True
        elif line.startswith("```"):
            in_console = False
        elif in_console and line.startswith("$ ") and not line[2:].startswith(SKIP):
            command = re.sub(r"\s+#.*$", "", line[2:])
            i += 1
            while i < len(lines) and not lines[i].startswith(("$ ", "```")):
                i += 1  # drop the old output
            result = run(command, cwd, env, terminal=in_demo)
            if result:
                out.append(result)
            continue
        i += 1
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether the files are up to date")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "80"}
    env.pop("SEMHASH_DB", None)
    stale = []
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "corpora").symlink_to(ROOT / "corpora")
        (Path(scratch) / "docs").symlink_to(ROOT / "docs")
        for name in FILES:
            path = ROOT / name
            old = path.read_text(encoding="utf-8")
            new = refresh(old, Path(scratch), env)
            if new != old:
                stale.append(name)
                if not args.check:
                    path.write_text(new, encoding="utf-8")
    if args.check and stale:
        sys.exit(f"out of date: {', '.join(stale)}")


if __name__ == "__main__":
    main()
