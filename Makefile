# `make demo` and `make test` create .venv on first use and install everything they need.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg

.PHONY: demo test lint bench clean browser

# torch goes first and pinned: an unpinned resolve would fetch CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seglab demo --out runs/demo

# The web page test drives Debian's chromium; install it when missing (the test skips, saying
# so, if it cannot be installed).
browser:
	@command -v chromedriver >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
	    || echo "note: could not install chromium + chromium-driver; the browser test will skip"; }

test: $(STAMP) browser
	$(PY) -m pytest -n 2 --durations=15 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy src

bench: $(STAMP)
	$(PY) benchmarks/unet_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
