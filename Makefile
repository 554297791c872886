# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := app.wsgi

.PHONY: run test lint migrate install install-dev bench clean lint-infra security audit smoke

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Apply every migration to the configured database (SQLite file under instance/ by default).
migrate: install
	$(BIN)/flask db upgrade heads

## Serve on http://127.0.0.1:8000 with gunicorn, as production does.
run: migrate
	BIND_HOST=$${BIND_HOST:-127.0.0.1} WEB_CONCURRENCY=$${WEB_CONCURRENCY:-2} \
		$(BIN)/gunicorn --config gunicorn.conf.py app.wsgi:application

lint: install-dev
	$(BIN)/ruff check .

## The whole suite (SQLite by default; PostgreSQL when TEST_DATABASE_URL is set).
test: install-dev lint
	$(BIN)/pytest

bench: install-dev
	$(BIN)/python -m bench.bench_solver

## CloudFormation and Elastic Beanstalk option checks (offline).
lint-infra: install-dev
	$(BIN)/cfn-lint infra/*.yaml
	$(BIN)/pytest -q tests/deploy/test_ebextensions.py tests/deploy/test_cfn_lint.py tests/deploy/test_nginx.py

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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
