# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := app.wsgi

.PHONY: run test lint migrate install install-dev bench clean

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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
