# Two commands on a machine with only Python 3.11+ and pip: `make demo` and `make test`.
# Both create .venv when it is missing and refresh it when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cycleplan needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cycleplan validate scenarios/full-feature.yaml
	$(BIN)/cycleplan plan scenarios/full-feature.yaml
	$(BIN)/cycleplan plan scenarios/full-feature.yaml --lanes backend=2
	$(BIN)/cycleplan execute scenarios/full-feature.yaml --agent emulated --time-scale 3000

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	.ci/typecheck

pytest: $(STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) build dist .typecheck *.egg-info
