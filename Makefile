# Set-up and the two everyday commands. `make run` and `make test` each install what
# they need into .venv first, so both work on a fresh machine with Python 3.11.

PYTHON ?= python3.11
VENV ?= .venv
SHARED_DATA ?= ../shared/data
# The data directory: $K8S_ANALYSIS_DATA_DIR when set, as for the k8s-analysis command.
DATA_DIR ?= $(or $(K8S_ANALYSIS_DATA_DIR),data)
# The export and release notes that `make run` imports before running the pipeline.
IMPORT_PATHS ?= $(SHARED_DATA)/kubernetes-prs/kubernetes-prs-api.tar.xz $(SHARED_DATA)/release-notes

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test benchmark validate dev clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/k8s-analysis --data-dir $(DATA_DIR) import $(IMPORT_PATHS)
	$(BIN)/k8s-analysis --data-dir $(DATA_DIR) run

test: $(STAMP)
	$(BIN)/python -m pytest

benchmark: $(STAMP)
	$(BIN)/python benchmarks/parse_tables.py

validate: $(STAMP)
	DAGSTER_HOME=$(abspath $(DATA_DIR))/dagster_home $(BIN)/dagster definitions validate -m k8s_analysis.definitions

dev: $(STAMP)
	mkdir -p $(DATA_DIR)/dagster_home
	test -f $(DATA_DIR)/dagster_home/dagster.yaml || $(BIN)/python -c 'import sys; from k8s_analysis.cli import DAGSTER_YAML; sys.stdout.write(DAGSTER_YAML)' > $(DATA_DIR)/dagster_home/dagster.yaml
	K8S_ANALYSIS_DATA_DIR=$(abspath $(DATA_DIR)) DAGSTER_HOME=$(abspath $(DATA_DIR))/dagster_home \
		$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf $(VENV)
