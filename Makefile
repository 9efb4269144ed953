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

# Two xdist workers: the suite waits on subprocesses, servers and PostgreSQL as much as it computes,
# so two halves on a 2-core machine take about half the time. `--dist loadgroup` keeps the tests
# marked ONE_AT_A_TIME (tests/support/marks.py) on one worker, one after another.
TEST_WORKERS ?= 2

test: $(BIN)/escalator
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

bench: $(BIN)/escalator
	$(BIN)/python bench/webhook_ack.py

# Build and test leftovers only. The database (escalator.db and its -wal/-shm files) holds the audit
# log and the events still waiting: it is never deleted here. Remove it by hand if you mean to.
clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache build dist
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	@ls escalator.db* >/dev/null 2>&1 && echo "kept escalator.db* (the audit log): delete it by hand if you mean to" || true
