# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BIND ?= 127.0.0.1:8000
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
export FLASK_APP := wsgi
export BIND

.PHONY: run test lint format bench demo screenshots venv dev-venv migrate clean

# What production runs (requirements.txt); the tools of the other targets come on top.
venv: $(VENV)/.installed
dev-venv: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-dev.txt
	touch $(VENV)/.installed $@

migrate: venv
	$(BIN)/flask db upgrade

run: migrate
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: dev-venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint and format check over the whole tree; `make format` rewrites what the check would refuse.
lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev-venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Measures against the stand-in on SQLite and PostgreSQL, one table; minutes, not part of `make test`.
bench: dev-venv
	$(BIN)/python -m bench $(BENCH_ARGS)

# The portal beside a local Microsoft 365 stand-in, seeded; no tenant needed (see tools/demo.py).
demo: dev-venv
	$(BIN)/python -m tools.demo

# The README's pictures (docs/screenshots/), taken from a fresh demo in Debian's chromium.
screenshots: dev-venv
	$(BIN)/python -m tools.screenshots

clean:
	rm -rf $(VENV) .pytest_cache
