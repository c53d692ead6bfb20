# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BIND ?= 127.0.0.1:8000
export FLASK_APP := wsgi
export BIND

.PHONY: run test bench demo venv migrate clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

migrate: venv
	$(BIN)/flask db upgrade

run: migrate
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Measures against the stand-in on SQLite and PostgreSQL, one table; minutes, not part of `make test`.
bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)

# The portal beside a local Microsoft 365 stand-in, seeded; no tenant needed (see tools/demo.py).
demo: venv
	$(BIN)/python -m tools.demo

clean:
	rm -rf $(VENV) .pytest_cache
