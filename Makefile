# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_CATALOGUE := data/demo
DEMO_RUN       := artifacts/demo
PORT   ?= 8501

.PHONY: install browser demo demo-data serve test lint bench clean

# Virtual environment with the pinned requirements and this package (editable, for the console script).
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the real-browser test (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

# Generate the demo catalogue (if missing) and build its run (steps already done are skipped).
demo-data: install
	@[ -f $(DEMO_CATALOGUE)/listings.csv ] || $(BIN)/python -m gallery_core demo-catalogue --out $(DEMO_CATALOGUE)
	$(BIN)/python -m gallery_core build --catalogue $(DEMO_CATALOGUE) --out $(DEMO_RUN) --image-size 128

serve: install
	$(BIN)/streamlit run app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false

demo: demo-data serve

test: install browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_trunk_cache.py
	$(BIN)/python benchmarks/bench_app.py
	$(BIN)/python benchmarks/bench_ann.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
