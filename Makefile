# The two commands of the README:
#   make run    install what the app needs, then start it on the embedded model
#   make test   install what the tests need (Debian's chromium included), then run them
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run PORT=8601` picks the app's port; a PORT (or HOST) that is merely in the environment,
# as containers and PaaS set them, is ignored: it was meant for something else. The address is
# 127.0.0.1 (.streamlit/config.toml): the dashboard is not published on the network.
ifeq ($(origin PORT),command line)
APP_PORT := $(PORT)
else
APP_PORT := 8501
endif
# Every package, transitive ones included, at the version the suite passed with (make lock).
PIP_INSTALL := $(BIN)/pip install --quiet -c constraints.txt

.PHONY: run share test test-fast lint install install-dev chromium postgresql bench clean lock \
	llama-server rebuild-llama-server

# pip is the venv's last file: a first run stopped while it made the venv left python without
# pip, and every later run failed on it. Without pip, the venv is made again from scratch.
$(BIN)/pip:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt constraints.txt | $(BIN)/pip
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt constraints.txt $(VENV)/.installed
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

# llama.cpp's own server, built portable (never -march=native: GGML_NATIVE=OFF) and cached per
# machine under ~/.cache/streamrace: see scripts/build_llama_server.py.
$(BIN)/llama-server: scripts/build_llama_server.py scripts/llama-server.txt | $(BIN)/pip
	$(BIN)/python scripts/build_llama_server.py --install $@

llama-server: $(BIN)/llama-server
rebuild-llama-server: | $(BIN)/pip
	$(BIN)/python scripts/build_llama_server.py --force --install $(BIN)/llama-server

install: $(VENV)/.installed $(BIN)/llama-server
install-dev: install $(VENV)/.installed-dev chromium postgresql

# Debian's chromium for the browser tests, and an emoji font so screenshots show the app's
# icons instead of empty boxes (root, or sudo without a password).
chromium:
	@{ command -v chromium >/dev/null 2>&1 && [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y chromium fonts-noto-color-emoji; }

# Debian's PostgreSQL server for the tests that run the run log on PostgreSQL: they start a
# throwaway cluster of their own (tests/support/postgres.py) and never use the system's.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y postgresql; }

run: install
	env -u HOST -u PORT $(BIN)/streamlit run streamlit_app.py --server.port $(APP_PORT)

# Shown to others on the network: every interface, the port of make run, and only once sign-in
# is configured (.streamlit/secrets.toml: [auth] for st.login, [sharing] allowed; README:
# Sharing); else one line says what to configure, and nothing starts.
share: install
	@$(BIN)/python -m lib.access check --port $(APP_PORT)
	env -u HOST -u PORT $(BIN)/streamlit run streamlit_app.py --server.port $(APP_PORT) \
	  --server.address 0.0.0.0

# The whole suite, after the style checks (ruff, mypy: settings in pyproject.toml).
test: install-dev lint
	$(BIN)/python -m pytest -q

# The edit loop, under a minute: unit and integration tests (real local servers); no pages, no
# browser, no embedded model, nothing marked slow.
test-fast: install-dev
	$(BIN)/python -m pytest -q tests/unit tests/integration -m "not embedded and not slow"

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every bench/ script; fails when one fails or prints no figure last (bench/_figures.py).
bench: install-dev
	$(BIN)/python bench/_figures.py $(filter-out bench/_%,$(sort $(wildcard bench/*.py)))

# Refresh constraints.txt: resolve requirements-dev.txt (which includes requirements.txt) anew
# in a scratch venv and pin everything it installed.
lock:
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet -r requirements-dev.txt
	{ echo "# Every package make run / make test install, pinned. Refresh: make lock"; \
	  $(VENV)-lock/bin/pip freeze --exclude-editable | LC_ALL=C sort -f; } > constraints.txt
	rm -rf $(VENV)-lock

clean:
	rm -rf $(VENV)
