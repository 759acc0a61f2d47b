# The two commands of the README:
#   make run    install what the app needs, then start it on the embedded model
#   make test   install what the tests need (Debian's chromium included), then run them
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
# Build llama.cpp without its multimodal part and tools: ~6 minutes instead of ~20.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF

.PHONY: run test test-fast lint install install-dev chromium bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev chromium

# Debian's chromium for the browser tests, and an emoji font so screenshots show the app's
# icons instead of empty boxes (root, or sudo without a password).
chromium:
	@{ command -v chromium >/dev/null 2>&1 && [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y chromium fonts-noto-color-emoji; }

run: install
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

# The whole suite, after the style checks (ruff, mypy: settings in pyproject.toml).
test: install-dev lint
	$(BIN)/python -m pytest -q

# The edit loop, under a minute: unit and integration tests (real local servers); no pages, no
# browser, no embedded model.
test-fast: install-dev
	$(BIN)/python -m pytest -q tests/unit tests/integration -m "not embedded"

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install-dev
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV)
