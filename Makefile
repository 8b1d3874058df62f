# The README's two commands: `make serve` (set up, index the bundled corpus, run the service)
# and `make test` (set up, lint, type-check, run every test). Both work on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup serve test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: unpinned, pip would fetch a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The widget tests drive Debian's Chromium (never a downloaded browser), with a CJK font so
# screenshots show the Chinese text; needs root or sudo.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq \
		--no-install-recommends chromium chromium-driver fonts-wqy-microhei

# `rag index` first: it re-embeds only what changed, and keeps the index in step with settings.
serve: setup
	$(BIN)/rag index
	$(BIN)/rag serve

lint: setup
	$(BIN)/ruff check rag api tests bench eval
	$(BIN)/ruff format --check rag api tests bench eval
	$(BIN)/mypy

test: lint $(CHROMIUM)
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/embedding.py

clean:
	rm -rf index .pytest_cache .mypy_cache .ruff_cache
