# Two commands on a machine with only Python 3.11+ and pip: `make demo` and `make test`.
# Both create .venv when it is missing and refresh it when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite runs on every core, a test file to a worker (`make test TEST_WORKERS=1` runs it in one).
TEST_WORKERS ?= auto

.PHONY: demo test lint typecheck pytest clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cycleplan needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,claude]'
	touch $(STAMP)

DEMO := demo-output

# The loop on the built-in full-feature scenario (the one-100 template): plan, predict, rehearse the
# run against the loopback emulator (no key, no network, no cost), and hold the run against the
# prediction. Reports land in $(DEMO)/.
demo: $(STAMP)
	@mkdir -p $(DEMO)
	$(BIN)/cycleplan plan scenarios/full-feature.yaml --report $(DEMO)/plan.html
	$(BIN)/cycleplan simulate scenarios/full-feature.yaml -n 2000 -o $(DEMO)/prediction.json --report $(DEMO)/prediction.html
	$(BIN)/cycleplan execute scenarios/full-feature.yaml --agent emulated --time-scale 600 --seed 1 --store $(DEMO)/runs.db
	$(BIN)/cycleplan compare latest --store $(DEMO)/runs.db --prediction $(DEMO)/prediction.json --report $(DEMO)/compare.html
	@echo "reports: $(DEMO)/plan.html $(DEMO)/prediction.html $(DEMO)/compare.html"

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	.ci/typecheck

pytest: $(STAMP)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) build dist .typecheck *.egg-info
