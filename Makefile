# Everything a fresh machine needs: `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Airflow gets its own environment: its pins clash with the pipeline's (see docs/airflow.md).
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
# img2dataset 1.47 for the import tests, in its own environment (its pins clash with ours).
I2D_VENV := .venv-img2dataset
I2D_STAMP := $(I2D_VENV)/.corpusforge-complete

.PHONY: venv venv-airflow venv-img2dataset test test-fast lint demo clean check-java

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py pipeline/image/_phash.c Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision are pinned; pip takes them from the machine's local wheel cache.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	# The C extension (pipeline/image/_phash.c) is optional for pip users; here it must build.
	# An old build in place would hide a failed one, so it goes first.
	rm -f pipeline/image/_phash*.so pipeline/image/_jpegdc*.so
	$(PY) -m pip install --quiet -e '.[dev]'
	# Chinese-CLIP's models and vocabulary (issue 18); --no-deps: see pyproject.toml's dev extra.
	$(PY) -m pip install --quiet --no-deps cn_clip==1.6.0
	@$(PY) -c 'import pipeline.image._phash' || { \
	  echo "The C extension did not build: a C compiler and Python headers are needed (sudo apt-get install -y gcc python3-dev)"; \
	  exit 1; }
	touch $(STAMP)

venv-airflow: $(AIRFLOW_STAMP)

$(AIRFLOW_STAMP): dags/requirements.txt dags/requirements-test.txt dags/constraints.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r dags/requirements-test.txt -c dags/constraints.txt
	# The DAG imports pipeline.orchestration only (stdlib); the jobs run in .venv via spark-submit.
	# Without the C extension: .venv's install builds it, and this one must not rebuild it in place.
	CORPUSFORGE_NO_EXTENSION=1 $(AIRFLOW_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(AIRFLOW_STAMP)

venv-img2dataset: $(I2D_STAMP)

$(I2D_STAMP): benchmarks/img2dataset-constraints.txt
	rm -rf $(I2D_VENV)
	$(PYTHON) -m testkit.img2dataset $(I2D_VENV)

check-java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "Java 17+ is required by Spark. Install it with: sudo apt-get install -y openjdk-17-jre-headless"; \
	  exit 1; }

# Debian programs the tests run for real: headless Chromium renders the report page
# (tests/report) and tinyproxy is the egress proxy of tests/fetch. Installed here when missing:
# as root, or with sudo, on Debian/Ubuntu; anywhere else the message says how.
# Each entry is program:package (the explorer's browser tests drive chromium through chromedriver).
DEBIAN_TOOLS := chromium:chromium chromedriver:chromium-driver tinyproxy:tinyproxy
.PHONY: check-debian-tools
test test-fast: check-debian-tools
check-debian-tools:
	@missing=""; for entry in $(DEBIAN_TOOLS); do command -v $${entry%%:*} >/dev/null 2>&1 || missing="$$missing $${entry#*:}"; done; \
	  [ -z "$$missing" ] && exit 0; \
	  hint="The tests need these Debian packages:$$missing. Install them with: sudo apt-get install -y$$missing"; \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "$$hint (or your system's packages)"; exit 1; \
	  elif [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	  else echo "$$hint"; exit 1; fi; \
	  echo "Installing$$missing (Debian packages) for the tests"; \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing \
	    || { echo "$$hint"; exit 1; }; \
	  for entry in $(DEBIAN_TOOLS); do command -v $${entry%%:*} >/dev/null 2>&1 || { echo "$$hint"; exit 1; }; done

# Two streams side by side: the main suite, and beside it the Airflow suite (dag.test() runs the
# chain's jobs) followed by the cluster and download tests (a standalone Spark cluster whose kill
# tests mostly wait on JVMs; fault servers, timeouts and killed downloads); the suites use less
# than one core on average when run one after the other. The side stream has its own basetemp
# and log, printed after the main suite's; any failure fails.
SIDE_CLUSTER := $(VENV)/bin/python -m pytest tests/cluster tests/download --durations=15
SIDE_DAGS := $(AIRFLOW_VENV)/bin/python -m pytest tests/dags --confcutdir=tests/dags
test: venv venv-airflow venv-img2dataset check-java
	$(VENV)/bin/ruff check .
	@side_log=$$(mktemp); side_tmp=$$(mktemp -d); \
	{ $(SIDE_DAGS) -p no:cacheprovider --basetemp=$$side_tmp/dags; dags=$$?; \
	  $(SIDE_CLUSTER) -p no:cacheprovider --basetemp=$$side_tmp/cluster; cluster=$$?; \
	  [ $$dags -eq 0 ] && [ $$cluster -eq 0 ]; } >$$side_log 2>&1 & side=$$!; \
	$(VENV)/bin/python -m pytest tests --ignore=tests/dags --ignore=tests/cluster --ignore=tests/download --durations=25; main=$$?; \
	wait $$side; side_rc=$$?; \
	echo "=== beside the main suite: $(SIDE_DAGS), then $(SIDE_CLUSTER) ==="; \
	cat $$side_log; rm -rf $$side_log $$side_tmp; \
	[ $$main -eq 0 ] && [ $$side_rc -eq 0 ]

test-fast: venv venv-airflow venv-img2dataset check-java
	$(VENV)/bin/python -m pytest tests --ignore=tests/dags -m "not slow"
	$(AIRFLOW_VENV)/bin/python -m pytest tests/dags --confcutdir=tests/dags -m "not slow"

lint: venv
	$(VENV)/bin/ruff check .

# `make package`: corpusforge's wheel (with the C extension) and the packed executor environment
# built from it, for spark-submit --archives build/package/corpusforge-env.tar.gz#environment
# (docs/scaling.md, "Packed environment"). Options of tools/pack_env.py go in PACKAGE_OPTIONS,
# e.g. PACKAGE_OPTIONS="--without torch,torchvision,open-clip-torch,tensorboard,matplotlib".
.PHONY: package
package: venv
	$(PY) -m tools.pack_env $(PACKAGE_OPTIONS)

demo: venv check-java
	$(VENV)/bin/corpusforge demo --workdir demo_output

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(I2D_VENV) demo_output .pytest_cache
