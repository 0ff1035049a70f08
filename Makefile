# `make demo` and `make test` create .venv on first use and install everything they need.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg

.PHONY: demo test lint bench clean browser display

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

# The tests also cover the napari viewer: its extra is installed for them, not for the demo.
VIEWER_STAMP := $(VENV)/.viewer-stamp
$(VIEWER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,viewer]"
	touch $(VIEWER_STAMP)

# napari's whole-window test needs OpenGL, which Qt's offscreen platform lacks: it runs again
# under Xvfb (Debian's xvfb and the xcb libraries Qt needs, installed when missing).
display:
	@command -v xvfb-run >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq xvfb libxcb-icccm4 libxcb-keysyms1 \
	      libxcb-cursor0 libxcb-image0 libxcb-render-util0 libxcb-randr0 libxcb-shape0 \
	      libxcb-xkb1 libxkbcommon-x11-0) >/dev/null 2>&1 \
	    || echo "note: could not install xvfb; the napari window test will skip"; }

# `model.name: smp` needs torchvision, whose registry wheels are CUDA builds that cannot be
# imported beside .venv's CPU torch 2.13.0: the tests marked `smp` (skipped in .venv) run in a
# second venv with torch 2.14.1 + torchvision 0.29.1 (a CUDA build, run on the CPU).
SMP_VENV  := .venv-smp
SMP_STAMP := $(SMP_VENV)/.installed-stamp

$(SMP_STAMP): pyproject.toml
	test -x $(SMP_VENV)/bin/python || python3 -m venv $(SMP_VENV)
	$(SMP_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SMP_VENV)/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(SMP_VENV)/bin/python -m pip install --quiet -e ".[dev,smp]"
	touch $(SMP_STAMP)

test: $(STAMP) $(VIEWER_STAMP) $(SMP_STAMP) browser display
	$(PY) -m pytest -n 2 --durations=15 tests
	$(SMP_VENV)/bin/python -m pytest -n 2 -q -m smp tests
	@if command -v xvfb-run >/dev/null 2>&1; then \
	  QT_QPA_PLATFORM=xcb xvfb-run -a $(PY) -m pytest -q tests/deploy/test_viewer.py -k open_viewer; fi

# lint-imports checks the import contracts of pyproject.toml (layers, forbidden imports, cycles).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports --no-logo

# seed 000's Keras U-Net runs in its own venv (TensorFlow CPU), never in seglab's; the check
# fails the build if anything pulled torch into it.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp

$(BENCH_STAMP): benchmarks/requirements-keras.txt
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-keras.txt
	$(BENCH_VENV)/bin/python -c "import importlib.util as u, sys; \
	  sys.exit('torch found in $(BENCH_VENV)' if u.find_spec('torch') else 0)"
	touch $(BENCH_STAMP)

# Timings on a shared machine are noisy: run when the cores are otherwise idle.
bench: $(STAMP) $(BENCH_STAMP)
	$(PY) benchmarks/unet_throughput.py
	$(PY) benchmarks/vs_keras.py
	$(PY) benchmarks/predict_memory.py

clean:
	rm -rf $(VENV) $(SMP_VENV) runs .pytest_cache .mypy_cache .ruff_cache
