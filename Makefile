# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAMPLE := corpora/20news-sample
DB := sample.db

.PHONY: install demo test test-nojit bench bench-quality bench-corpora bench-speed bench-cli clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# numba compiles each kernel on its first call, and keeps it in its cache (in
# semhash/__pycache__) until kernels.py changes: compile them all here once, so
# neither the demo nor the tests wait for it.
$(VENV)/.warm: $(VENV)/.installed semhash/kernels.py
	$(PY) -c 'from semhash import search; search.warmup()'
	touch $@

install: $(VENV)/.warm

demo: install
	$(VENV)/bin/semhash index -d $(DB) $(SAMPLE)/train
	$(VENV)/bin/semhash query -d $(DB) -n 5 "nasa shuttle launch orbit"

test: install
	$(PY) -m pytest -q

test-nojit: install
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q tests/test_kernels.py tests/test_search.py tests/test_codes.py

bench: bench-quality bench-speed bench-cli

# Full 20 Newsgroups protocol; CORPUS may point at another copy of the tarball.
CORPUS ?= ../shared/corpora-src/20news-bydate/20news-bydate.tar.gz
bench-quality: install
	$(PY) bench/quality.py --corpus $(CORPUS) --plot docs/pr-20ng.png

# One precision table over 20NG, StackOverflow and Biomedical, beside BM25 and
# BM25+PRF; CORPORA_ARGS adds options, e.g. CORPORA_ARGS='--corpora so --keep bench/.data/corpora'.
bench-corpora: install
	$(PY) bench/corpora.py --out bench/out/corpora.md --json bench/out/corpora.json $(CORPORA_ARGS)

# Scan and Hamming-ball timings on synthetic codes, beside FAISS (installed here:
# it is a benchmark-only dependency).
bench-speed: install
	$(PY) -m pip install --quiet faiss-cpu
	$(PY) bench/speed.py

# Whole processes: one query beside the bare imports, a batch, and a million
# synthetic documents encoded and indexed (needs the index bench-quality builds).
bench-cli: install
	$(PY) bench/cli.py

clean:
	rm -rf $(VENV) *.egg-info $(DB)
