"""The docs stay true: every command documented and helped, the README's demo what
`make demo` runs and prints, links that resolve, the front pages within their size.

The console blocks' outputs themselves are pasted by ``docs/readme_session.py``
(``--check`` says whether they are current): they train a model, too slow here.
"""

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from semhash.cli import cli
from semhash.corpus import first_line, read_text

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
USAGE = (ROOT / "docs" / "usage.md").read_text(encoding="utf-8")
PAGES = ["README.md", "BENCHMARKS.md", *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md")))]


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_command_in_usage(command):
    # A `$ semhash COMMAND` example line in docs/usage.md, the reference.
    assert re.search(rf"^\$ .*\bsemhash {command}\b", USAGE, re.M), f"docs/usage.md shows no `$ semhash {command}` example"


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_command_has_help_with_example(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert cli.commands[command].help and "Example:" in result.stdout


def test_usage_documents_completion():
    assert "_SEMHASH_COMPLETE" in USAGE


@pytest.mark.parametrize("name, limit", [("README.md", 10_000), ("BENCHMARKS.md", 20_000)])  # the KB
def test_front_pages_stay_short(name, limit):
    assert len((ROOT / name).read_bytes()) <= limit


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    path = ROOT / page
    for target in re.findall(r"\]\(([^)#\s]+)[^)]*\)", path.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (path.parent / target).exists(), f"{page} links to {target}, which does not exist"


def test_readme_links_every_doc():
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{doc.name})" in README, f"README.md does not link docs/{doc.name}"


def _demo() -> tuple[list[str], list[str]]:
    """The commands and output lines of the README's demo block."""
    block = README.split("<!-- demo:start -->")[1].split("<!-- demo:end -->")[0]
    lines = block.split("```console\n")[1].split("```")[0].splitlines()
    return [line[2:] for line in lines if line.startswith("$ ")], [line for line in lines if not line.startswith("$ ")]


def test_demo_shows_what_make_demo_runs():
    makefile = (ROOT / "Makefile").read_text()
    values = dict(re.findall(r"^(\w+) :?= (.+)$", makefile, re.M))
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    commands = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], line.strip()) for line in recipe.splitlines()]
    assert [c.replace(".venv/bin/semhash", "semhash") for c in commands] == _demo()[0]


def test_demo_rows_are_the_sample_s_posts_with_their_titles():
    # What a terminal shows does not depend on the machine in these respects, where
    # the scores and the order may (the block is pasted by docs/readme_session.py).
    output = _demo()[1]
    header = next(i for i, line in enumerate(output) if line.split()[:2] == ["#", "score"])
    assert output[header].split() == ["#", "score", "id", "title"]
    rows = [line.split(None, 3) for line in output[header + 1 :]]
    limit = int(re.search(r"-n (\d+)", _demo()[0][1]).group(1))
    assert [int(r[0]) for r in rows] == list(range(1, limit + 1))
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    for _, _, doc_id, title in rows:
        post = ROOT / "corpora" / "20news-sample" / "train" / doc_id
        assert post.is_file(), f"the demo lists {doc_id}, which is not a post of the sample"
        shown = title.removesuffix("…")
        assert first_line(read_text(post)[0]).startswith(shown) and shown


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_readme_quality_figures_are_the_benchmarks_current_ones():
    # One source for each figure: the README rounds BENCHMARKS.md's "now" column.
    bench = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8").split("<!-- corpora:start -->")[1]
    rows = {_cells(line)[0].split(",")[0]: _cells(line)[1:] for line in bench.splitlines() if line.startswith("| ")}

    def now(cell: str) -> float:
        return float(cell.split("/")[-1].strip(" *"))

    readme = {_cells(line)[0]: _cells(line)[1:] for line in README.splitlines() if line.startswith("| `semhash") or line.startswith("| BM25")}
    def same(shown: str, measured: float) -> bool:  # shown rounded to 3 places, either way at a half
        return abs(float(shown) - measured) <= 0.0005 + 1e-9

    for column, corpus in enumerate(["20NG", "StackOverflow", "Biomedical"]):
        default, codes, _, bm25, prf = (now(c) for c in rows[corpus])
        assert same(readme["`semhash query` (codes choose, words and codes rank)"][column], default), corpus
        assert same(readme["`semhash query --codes-only` (the codes alone)"][column], codes), corpus
        shown_bm25, shown_prf = readme["BM25 / BM25 with pseudo-relevance feedback, same run"][column].split("/")
        assert same(shown_bm25, bm25) and same(shown_prf, prf), corpus


def test_every_bench_section_has_its_markers():
    # Each bench script rewrites the lines between its markers; a missing pair would
    # append a second copy of its section at the end of the file instead.
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    scripts = " ".join(p.read_text(encoding="utf-8") for p in (ROOT / "bench").glob("*.py"))
    names = set(re.findall(r'"<!-- ([\w-]+):start -->"', scripts)) | {"corpora"}
    assert {"quality", "speed", "cli", "cli-scale"} <= names
    for name in names:
        assert text.count(f"<!-- {name}:start -->") == 1 and text.count(f"<!-- {name}:end -->") == 1, name
        assert text.index(f"<!-- {name}:start -->") < text.index(f"<!-- {name}:end -->")


# -- the code stays readable (issue 24): each step in a module a reader can name ------

SOURCES = sorted((ROOT / "semhash").glob("*.py"))
#: Lines at most: a module (but kernels.py, which numba caches as one file), a
#: function (kernels.py's too are exempt: one kernel is one loop nest), and class
#: Index, the library's face, which delegates each step to a module of its own.
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_INDEX_LINES = 600, 80, 250
#: Functions allowed past the limit for now, each with why. An entry goes once its
#: function is split (the test says so).
LONG_FUNCTIONS: dict[str, str] = {}  # name: why it may stay long


def _definitions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "kernels.py"], ids=lambda p: p.name)
def test_modules_stay_short(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_MODULE_LINES, f"semhash/{path.name} has {n} lines: split it by responsibility"


def test_functions_stay_short():
    long = {
        f"{path.name}:{node.name}": n
        for path in SOURCES if path.name != "kernels.py"
        for node, n in _definitions(path)
        if not isinstance(node, ast.ClassDef) and n > MAX_FUNCTION_LINES
    }
    assert set(long) - set(LONG_FUNCTIONS) == set(), f"functions over {MAX_FUNCTION_LINES} lines: {long}"
    assert set(LONG_FUNCTIONS) - set(long) == set(), "split now: remove them from LONG_FUNCTIONS"


def test_index_delegates():
    (n,) = [n for node, n in _definitions(ROOT / "semhash" / "api.py") if node.name == "Index"]
    assert n <= MAX_INDEX_LINES, f"class Index has {n} lines: move the work to the module of its step"


def test_no_module_imports_the_package_it_is_part_of():
    """``from semhash import X`` in the package names a module, never something of
    ``semhash/__init__.py``, which loads the modules lazily (an import running back
    up made api depend on the package that imports it)."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "semhash" and node.level == 0:
                for alias in node.names:
                    assert (ROOT / "semhash" / f"{alias.name}.py").is_file(), (
                        f"semhash/{path.name} imports {alias.name} from the package: import it from its module"
                    )
