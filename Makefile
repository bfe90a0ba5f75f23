# The two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
AISOULE_HOST ?= 127.0.0.1
AISOULE_PORT ?= 8000
export AISOULE_HOST AISOULE_PORT

.PHONY: run test lint typecheck bench bench-compare wrk fuzz wheel clean help

help:
	@echo "make run    - install into .venv, migrate, start http://$(AISOULE_HOST):$(AISOULE_PORT)"
	@echo "make test   - install dev dependencies, lint, type-check, run the suite (SQLite + PostgreSQL)"
	@echo "make bench  - benchmarks on PostgreSQL (1M contacts), results in docs/benchmarks.md"
	@echo "make bench-compare BEFORE=dir AFTER=dir - the bench scenarios at two checkouts, alternating"
	@echo "make fuzz   - the schemathesis API fuzz test with FUZZ_EXAMPLES (1000) cases per operation"
	@echo "make wheel  - dist/aisoule-*.whl, carrying the browser assets (docs/deployment.md)"

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "aisoule needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.python-ok
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Browser assets (the API docs pages): from the npm registry, pinned by package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

run: $(VENV)/.installed node_modules/.installed
	$(BIN)/aisoule migrate
	@$(BIN)/python -m aisoule.welcome
	$(BIN)/aisoule serve

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check aisoule tests $(wildcard bench)
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Two pytest processes (each with its own servers and PostgreSQL database; files kept together):
# most of the suite waits on real servers, so this takes the suite from about 9 to 7 minutes.
test: lint typecheck node_modules/.installed
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# `make test` runs the same fuzz test with 15 cases per operation.
FUZZ_EXAMPLES ?= 1000
fuzz: $(VENV)/.installed-dev
	AISOULE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q tests/test_fuzz.py

# The load generator of the API benchmarks, from Debian's archive (as .ci/run installs chromium).
wrk:
	@if [ ! -x /usr/bin/wrk ]; then \
	  echo "installing wrk"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq wrk >/dev/null; \
	fi

bench: $(VENV)/.installed-dev wrk node_modules/.installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.webhooks --write
	$(BIN)/python -m bench.send --write
	$(BIN)/python -m bench.campaign --write
	$(BIN)/python -m bench.dashboard --write
	$(BIN)/python -m bench.inbox --write

# Two checkouts (git worktrees) of the code, e.g. for issue 9:
#   git worktree add --detach ../bench-before 1f2502d && git worktree add --detach ../bench-after 662bdde
#   make bench-compare BEFORE=../bench-before AFTER=../bench-after COMPARE_ARGS=--write
bench-compare: $(VENV)/.installed-dev wrk
	$(BIN)/python -m bench.compare --before $(BEFORE) --after $(AFTER) $(COMPARE_ARGS)

# A wheel that carries the npm-installed browser assets (setup.py copies them from node_modules).
wheel: $(VENV)/.python-ok node_modules/.installed
	$(BIN)/pip wheel --quiet --no-deps -w dist .

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache build dist aisoule/vendor
