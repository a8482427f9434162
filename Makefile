# Two commands for a newcomer: `make demo` (the bot on embedded defaults) and `make test`.
# Both create .venv and install the project on first use (Python 3.11 and the package registries only).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo console test check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/feedbackbot --log-level WARNING console --script examples/tour.txt

console: $(STAMP)
	$(BIN)/feedbackbot console

test: $(STAMP)
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_suggest.py
	$(BIN)/python bench/bench_ack.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
