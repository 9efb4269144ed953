# The two commands a newcomer needs: `make run` and `make test`. Each makes its own virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean

$(BIN)/escalator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/escalator
	$(BIN)/escalator serve

test: $(BIN)/escalator
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

bench: $(BIN)/escalator
	$(BIN)/python bench/webhook_ack.py

clean:
	rm -rf $(VENV) *.egg-info escalator.db escalator.db-*
