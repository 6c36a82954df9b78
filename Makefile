# Two commands on a fresh machine: `make run` (the default pipeline) and `make test`.
# Both create .venv and install the pinned requirements first (constraints.txt).
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 8
PORT ?= 5000
FASHION_MNIST := /usr/share/datasets/fashion-mnist
# The NB201 accuracy table ships with the package (src/e2nas/tables/); E2NAS_NB201_TABLE overrides it.

.PHONY: setup data run test test-fast test-kill mutants lint mlflow-ui clean clean-venv

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed data

# Fashion-MNIST from Debian's package (needs root), unless E2NAS_DATA_DIR points elsewhere.
data:
	@if [ -z "$$E2NAS_DATA_DIR" ] && [ ! -d $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; fi; \
	fi

run: setup
	$(VENV)/bin/snakemake --cores $(CORES)

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# The whole kill matrix: 10 seeded SIGKILLs of the smoke pipeline (CI runs 3 of them, ~11 min for all).
test-kill: setup
	E2NAS_KILL_MATRIX=all $(PY) -m pytest tests/workflow/test_kill_matrix.py

# Every mutant of the search code against the tests named as its killers (make test runs a seeded 12 of them).
mutants: setup
	E2NAS_MUTANTS=all $(PY) -m pytest -m slow tests/search/test_mutants.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port $(PORT) --backend-store-uri sqlite:///results/mlflow.db

# Remove one run: results/$(RUN), its MLflow experiment (marked deleted), its parameter files; asks first (YES=1: no).
clean: $(VENV)/.installed
	@test -n "$$RUN" || { echo "usage: make clean RUN=name [YES=1]  (the run's folder under results/)"; exit 2; }
	$(VENV)/bin/e2nas clean $(if $(YES),--yes) -- "$$RUN"

clean-venv:
	rm -rf $(VENV)
