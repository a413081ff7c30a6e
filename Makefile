# `make demo` and `make test` create or refresh .venv (reinstalling only when pyproject.toml changed), then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,flower]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/speechfl demo

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) results demo_out corpora .pytest_cache
