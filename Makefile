# Everything a fresh machine needs: `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast lint demo clean check-java

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision are pinned; pip takes them from the machine's local wheel cache.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

check-java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "Java 17+ is required by Spark. Install it with: sudo apt-get install -y openjdk-17-jre-headless"; \
	  exit 1; }

test: venv check-java
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest tests

test-fast: venv check-java
	$(VENV)/bin/python -m pytest tests -m "not slow"

lint: venv
	$(VENV)/bin/ruff check .

demo: venv check-java
	$(VENV)/bin/corpusforge demo --workdir demo_output

clean:
	rm -rf $(VENV) demo_output .pytest_cache
