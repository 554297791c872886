# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := app.wsgi

.PHONY: run test lint migrate install install-dev bench clean lint-infra security audit smoke system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-local.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-local.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements-local.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Apply every migration to the configured database (SQLite file under instance/ by default).
migrate: install
	$(BIN)/flask db upgrade heads

## Serve on http://127.0.0.1:8000 with gunicorn, as production does, and the history loader
## next to it (Procfile.dev, run by honcho; Ctrl-C stops both).
run: migrate
	BIND_HOST=$${BIND_HOST:-127.0.0.1} WEB_CONCURRENCY=$${WEB_CONCURRENCY:-2} \
		RATELIMIT_STORAGE_URI=$${RATELIMIT_STORAGE_URI:-redis+unix://$(abspath instance)/ratelimit-redis.sock} \
		PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho -f Procfile.dev start -p $${PORT:-8000}

lint: install-dev
	$(BIN)/ruff check .

## The whole suite (SQLite by default; PostgreSQL when TEST_DATABASE_URL is set).
test: install-dev lint
	$(BIN)/lint-imports
	$(BIN)/pytest

## Solver parse/solve vs json.loads; the old 2^N algorithm vs the linear one; history recording
## cost and export rate; votes/s; the CPU of one small legacy solve, part by part. The history,
## polls and request-cost benchmarks use the local PostgreSQL (databases they create); request
## cost also uses Redis (db 13).
bench: install-dev
	$(BIN)/python -m tools.bench.bench_solver
	$(BIN)/python -m tools.bench.bench_exponential
	$(BIN)/python -m tools.bench.bench_history
	$(BIN)/python -m tools.bench.bench_polls
	$(BIN)/python -m tools.bench.bench_request_cost

## CloudFormation and Elastic Beanstalk option checks (offline).
lint-infra: install-dev
	$(BIN)/cfn-lint --include-checks I -- infra/*.yaml
	$(BIN)/pytest -q -p no:cacheprovider tests/deploy/test_ebextensions.py \
		tests/deploy/test_environment.py tests/deploy/test_monitoring.py \
		tests/deploy/test_pipeline.py tests/deploy/test_edge.py tests/deploy/test_cfn_lint.py \
		tests/deploy/test_nginx.py

## Static security scan: fails on high-severity findings.
security: install-dev
	$(BIN)/bandit -q -r app -lll
	$(BIN)/bandit -q scripts/smoke -lll

## Dependency audit; needs the vulnerability database online (CodeBuild runs it).
audit: install-dev
	$(BIN)/pip install --quiet pip-audit==2.10.1
	$(BIN)/pip-audit --strict -r requirements.txt

## Against a running `make run` (or BASE_URL=https://...).
smoke:
	scripts/smoke $${BASE_URL:-http://127.0.0.1:8000}

## System packages some end-to-end tests drive (nginx, openssl, chromium); installed only if
## missing. Without them those tests skip with a reason.
system-deps:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
				|| echo "warning: could not install$$missing; the tests that need them will skip"; \
		else echo "warning: not root, cannot install$$missing; the tests that need them will skip"; fi; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

## --- Production rehearsal on 127.0.0.1 (issue 8; see docs/PERFORMANCE.md) ---------------------
# nginx TLS :8443 (:8080 redirects) -> two production-mode instances from the Procfile, PostgreSQL
# database paintshop_staging (dropped, created and migrated), Redis db 14 for rate limits.
.PHONY: staging staging-stop load compare-bare compare-votes faults staging-ci
STAGING_PY = $$(test -x $(BIN)/python && echo $(BIN)/python || echo $(PYTHON))

staging: install-dev
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || \
		(apt-get update && apt-get install -y nginx)
	@command -v openssl >/dev/null 2>&1 || (apt-get update && apt-get install -y openssl)
	$(BIN)/python -m tools.staging.stack start

## Stops exactly the processes recorded in tools/staging/run/pids.
staging-stop:
	$(STAGING_PY) -m tools.staging.stack stop

## Bounded locust run against staging (LOAD_DURATION=60 LOAD_USERS=20); results in
## tools/load/results/.
load: install-dev
	@test -f tools/staging/run/state.json || $(MAKE) staging
	$(BIN)/python -m tools.load.run

## Full stack against the bare WSGI and Flask hello routes through the same TLS proxy (wrk).
compare-bare: install-dev
	@command -v wrk >/dev/null 2>&1 || (apt-get update && apt-get install -y wrk)
	@test -f tools/staging/run/state.json || $(MAKE) staging
	$(BIN)/python -m tools.load.compare_bare

## Re-votes on one poll through the load balancer (wrk + Lua, 128 voters) against pgbench of the
## same vote transaction at its leanest, in one run; prints the ratio (target >= 0.25).
compare-votes: install-dev
	@command -v wrk >/dev/null 2>&1 || (apt-get update && apt-get install -y wrk)
	@command -v pgbench >/dev/null 2>&1 || (apt-get update && apt-get install -y postgresql-contrib)
	@test -f tools/staging/run/state.json || $(MAKE) staging
	$(BIN)/python -m tools.load.compare_votes

## Fault drills under load, each with a PASS/FAIL verdict (restarts PostgreSQL once).
faults: install-dev
	@test -f tools/staging/run/state.json || $(MAKE) staging
	$(BIN)/python -m tools.faults.drills $(DRILLS)

## The CI short version: own ports and database, short load, kill one instance (< 3 minutes).
staging-ci: install-dev
	$(BIN)/pytest -q -p no:cacheprovider tests/e2e/test_staging_short.py

.PHONY: fuzz docs-check

## Schemathesis over every operation of /openapi.json, authenticated (FUZZ_MAX_EXAMPLES per op).
fuzz: install-dev
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-100} $(BIN)/pytest -q -p no:cacheprovider \
		--timeout=1800 tests/ops/test_fuzz.py

## GET /docs in headless Chromium (installs the apt packages chromium + chromium-driver if missing).
docs-check: install-dev
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium chromium-driver; \
		else sudo apt-get update && sudo apt-get install -y chromium chromium-driver; fi; }
	$(BIN)/pytest -q -p no:cacheprovider tests/e2e/test_docs_chromium.py
