# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Each creates .venv when it is missing, installs what it needs once, then runs.
# A torch that already imports inside .venv is kept; otherwise torch==2.13.0 (the CPU wheel) is
# installed. Re-running a command reinstalls nothing unless pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
TORCH_SPEC ?= torch==2.13.0
OUT ?= demo-report
PYTEST_ARGS ?=

.PHONY: demo test test-all docs clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, and only when it does not import already (never force-reinstalled).
$(VENV)/.torch: | $(PY)
	@$(PY) -c "import torch" 2>/dev/null && echo "torch already importable in $(VENV): kept" \
	  || $(PIP) install "$(TORCH_SPEC)"
	@touch $@

$(VENV)/.installed-%: pyproject.toml $(VENV)/.torch
	$(PIP) install -e ".[$(subst +,$(comma),$*)]"
	@touch $@

comma := ,

demo: $(VENV)/.installed-alibi
	$(PY) -m captum_latent demo --out $(OUT)

test: $(VENV)/.installed-alibi+ray+test
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(VENV)/.installed-alibi+ray+test
	$(PY) -m pytest $(PYTEST_ARGS)

docs: $(VENV)/.installed-alibi+docs
	$(PY) -m mkdocs build --strict

clean-venv:
	rm -rf $(VENV)
