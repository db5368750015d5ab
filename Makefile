# The two commands of the README: `make run` (or `make demo`) and `make test`.
# Everything installs into .venv from PyPI; PostgreSQL and Redis are embedded
# unless DATABASE_URL / REDIS_URL point at servers.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo test lint clean-data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) manage.py run_stack

demo: $(STAMP)
	$(PY) manage.py run_stack --exit

test: $(STAMP)
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-data:
	$(PY) -c "from config.embedded import stop_embedded_services; stop_embedded_services()"
	rm -rf .data
