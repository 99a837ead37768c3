# Passport: the two commands a new machine needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test test-fast check lint types install install-test bench bench-peers bench-console clean

$(BIN)/passport: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml $(BIN)/passport
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The relying-party libraries the live tests run (openid-client, oidc-client-ts), exactly
# as tests/clients/package-lock.json pins them; again only when the lock file changes.
CLIENTS = tests/clients
$(CLIENTS)/node_modules/.installed: $(CLIENTS)/package-lock.json
	npm ci --prefix $(CLIENTS) --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/passport
install-test: $(VENV)/.test-deps $(CLIENTS)/node_modules/.installed

## Install into .venv, create/migrate ./passport.sqlite3 and serve on http://127.0.0.1:8000
run: install
	$(BIN)/passport serve

## Install test dependencies, make sure MariaDB/PostgreSQL/Redis are up, lint, type-check, test.
## The tests run in TEST_WORKERS processes (pytest-xdist): most of the time goes to live
## servers, browsers, Apache and Node clients waiting on each other, so more workers than
## CPUs pay (6 on this 2-CPU machine: 18:54 against 19:19 with 4, 2026-11-26); each worker
## has its own databases and Redis database (tests/conftest.py) and ports (tests/ports.py).
TEST_WORKERS ?= 6
test: install-test
	scripts/services-up
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/pytest -n $(TEST_WORKERS)

## Fast development loop: SQLite and the database session store only, no server processes,
## MariaDB, PostgreSQL or Redis (markers: -m "not (live or browser or mariadb or postgresql
## or redis or slow)"), 25 hostile-input examples per property instead of 300, on every CPU
## (pytest-xdist), SQLite files in memory (/dev/shm) where there is one; stops at the first
## failure.
## `make test` still runs everything.
test-fast: install-test
	TMPDIR=$$(test -d /dev/shm && echo /dev/shm || echo $${TMPDIR:-/tmp}) \
	PASSPORT_TEST_HYPOTHESIS=fast $(BIN)/pytest --fast -x -q -n auto

bench: install-test
	$(BIN)/python bench/run.py

## The admin console's pages over 100,000 imported users, on SQLite and PostgreSQL
## (bench/console_pages.py; docs/benchmarks.md has the figures).
bench-console: install-test
	scripts/services-up
	$(BIN)/python bench/console_pages.py --backend sqlite
	$(BIN)/python bench/console_pages.py --backend postgresql

## Passport side by side with node-oidc-provider and django-oauth-toolkit (bench/peers.py):
## each server on CPU 0 with one worker, wrk on CPU 1; needs wrk, taskset, Node.js 20+.
## The peers' dependencies are installed as their lock/requirements files pin them, again
## only when those change.  Options: make bench-peers BENCH_PEERS_ARGS="--rounds 1 ..."
NODE_PEER   = bench/peers/node
DJANGO_PEER = bench/peers/django
$(NODE_PEER)/node_modules/.installed: $(NODE_PEER)/package-lock.json
	npm ci --prefix $(NODE_PEER) --no-audit --no-fund --loglevel=error
	touch $@

$(DJANGO_PEER)/.venv/.installed: $(DJANGO_PEER)/requirements.txt
	rm -rf $(DJANGO_PEER)/.venv
	$(PYTHON) -m venv $(DJANGO_PEER)/.venv
	$(DJANGO_PEER)/.venv/bin/pip install --quiet --upgrade pip
	$(DJANGO_PEER)/.venv/bin/pip install --quiet -r $(DJANGO_PEER)/requirements.txt
	touch $@

BENCH_PEERS_ARGS ?=
bench-peers: install-test $(NODE_PEER)/node_modules/.installed $(DJANGO_PEER)/.venv/.installed
	scripts/services-up
	$(BIN)/python bench/peers.py --node-dir $(NODE_PEER) --django-dir $(DJANGO_PEER) $(BENCH_PEERS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
