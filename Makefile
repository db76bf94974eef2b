# The two commands a newcomer runs: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PACKAGES := schemas jobstore producer workers emulator launcher monitor gateway llm_fleet.py
# Debian packages the tests use, installed where missing: `prometheus` (promtool and a Prometheus server, for
# the ops tests) and `tmux` (a real terminal, for `top` and `batch`).
DEBS := prometheus tmux
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# The image's pinned dependency tree (ops/Dockerfile installs it): every extra a deployed process needs.
LOCK_EXTRAS := workers emulator monitor gateway

.PHONY: demo test bench lock clean litellm-proxy

demo: $(VENV)/.demo
	$(PY) -m llm_fleet demo

test: $(VENV)/.dev
	command -v promtool >/dev/null && command -v tmux >/dev/null || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEBS); }
	$(PY) -m ruff check $(PACKAGES) tests bench
	$(PY) -m ruff format --check $(PACKAGES) tests bench
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	rm -f .coverage .coverage.*
	$(PY) -m coverage run -m pytest
	$(PY) -m coverage combine -q
	$(PY) -m coverage report

bench: $(VENV)/.bench
	$(PY) -m bench $(ARGS)

lock: $(VENV)/.dev
	$(PY) -m uv pip compile pyproject.toml $(LOCK_EXTRAS:%=--extra %) --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu --generate-hashes --quiet \
		--custom-compile-command "make lock" -o ops/requirements.lock

$(VENV)/.demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.demo

# LiteLLM's proxy, the peer of `python -m bench gateway`, in a venv of its own (`litellm[proxy]` cannot resolve:
# bench/litellm-proxy.txt says why): `make litellm-proxy`, then `make bench ARGS="gateway --litellm $(LITELLM_VENV)/bin/litellm"`
LITELLM_VENV ?= /work/venv-litellm
litellm-proxy: $(LITELLM_VENV)/bin/litellm
$(LITELLM_VENV)/bin/litellm: bench/litellm-proxy.txt
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install -q -r bench/litellm-proxy.txt
	touch $@

$(VENV)/.bench: $(VENV)/.dev
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
