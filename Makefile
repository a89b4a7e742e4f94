# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_CATALOGUE := data/demo
DEMO_RUN       := artifacts/demo
PORT   ?= 8501
LOCK_FLAGS := -c requirements/pins.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
              --quiet --no-header --annotation-style line $(UPGRADE)

.PHONY: install lock browser scatter demo demo-data serve test lint bench clean

# Virtual environments from the lock files (exact versions of everything; see requirements/README.md),
# then this package itself (editable, for the console script; its dependencies are all in the lock).
RUNTIME := $(VENV)/.runtime
DEV     := $(VENV)/.dev
BENCH   := $(VENV)/.bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

define install_lock
	$(BIN)/pip install --quiet -r $(1)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(2)
endef

# The runtime lock, plus the onnx extra at dev.lock's versions: the demo's trunk pass and embed run in ONNX Runtime
# (its first build 8 min 41 s -> 7 min 12 s, docs/benchmarks/scale.md); a pip user opts in with gallery-core[onnx].
$(RUNTIME): requirements/runtime.lock requirements/dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/runtime.lock
	$(BIN)/pip install --quiet -c requirements/dev.lock onnxruntime onnx
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

$(DEV): requirements/dev.lock pyproject.toml $(RUNTIME)
	$(call install_lock,requirements/dev.lock,$@)

$(BENCH): requirements/bench.lock pyproject.toml $(RUNTIME)
	$(call install_lock,requirements/bench.lock,$@)

install: $(RUNTIME)

# Re-resolve the lock files from pyproject.toml's ranges (after changing a range; needs the registry).
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements/runtime.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --extra lint --extra distributed --extra onnx --extra openvino --extra auth -c requirements/runtime.lock $(LOCK_FLAGS) -o requirements/dev.lock
	$(BIN)/uv pip compile pyproject.toml --extra bench -c requirements/runtime.lock $(LOCK_FLAGS) -o requirements/bench.lock

# Debian's Chromium for the real-browser test (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

# The Map page's WebGL scatter (deck.gl): its bundle, ui/components/scatter/dist/scatter.js, is committed, so
# nothing here needs Node; this rebuilds it from src/ and package-lock.json (Node 20, the npm registry).
scatter:
	cd ui/components/scatter && npm ci --no-audit --no-fund && npm run build

# Generate the demo catalogue (if missing) and build its run (steps already done are skipped).
demo-data: install
	@[ -f $(DEMO_CATALOGUE)/listings.csv ] || $(BIN)/python -m gallery_core demo-catalogue --out $(DEMO_CATALOGUE)
	$(BIN)/python -m gallery_core build --catalogue $(DEMO_CATALOGUE) --out $(DEMO_RUN) --image-size 128

# `make serve READ_ONLY=1`: hide every action that writes to disk (a public viewer; README "Working as a team").
serve: install
	$(BIN)/python -m gallery_core serve --port $(PORT) $(if $(filter 1 yes true,$(READ_ONLY)),--read-only)

demo: demo-data serve

test: $(DEV) browser
	$(BIN)/python -m pytest

lint: $(DEV)
	$(BIN)/ruff check .

bench: $(BENCH)
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_trunk_cache.py
	$(BIN)/python benchmarks/bench_app.py
	$(BIN)/python benchmarks/bench_ann.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
