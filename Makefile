# vidgan: `make demo` runs the main job on a built-in example; `make test` runs the test suite.
# Both create the virtual environment (.venv) and install the project into it when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m compileall -q vidgan gui
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vidgan demo --out-dir demo-out

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -ra

bench: $(STAMP)
	$(PY) benchmarks/bench_anonymize.py

clean:
	rm -rf demo-out .pytest_cache
