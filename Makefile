# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv on first use. torch is pinned to the CPU build this machine
# kind installs from a local wheel; on a GPU machine install your CUDA torch first
# (`make install TORCH=torch`).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-quick bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,gguf,tracking]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/arena experiment checkability

test: $(STAMP)
	$(PY) -m pytest -q

test-quick: $(STAMP)  # the suite without the end-to-end tests marked slow
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(VENV)/bin/arena bench

clean:
	rm -rf $(VENV) runs/*/
