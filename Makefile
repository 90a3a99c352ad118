# The two commands a new user needs: `make run` and `make test`.
# Everything below them is installed here, idempotently, on first use.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.13; prefer the same interpreter locally (pyenv keeps it off PATH).
PYTHON ?= $(shell for p in python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) python3; do \
            $$p -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && { echo $$p; break; }; done)
VENV     := .venv
BIN      := $(VENV)/bin
PY       := $(BIN)/python
SAM_VENV := .venv-sam
CHROMIUM := /usr/bin/chromium

USER   ?= alice
ROLE   ?= user
ARGS   ?=
STACK  ?= realtime-app
PYTEST_ARGS ?=

LOCAL_SECRET := .local/auth-secret

.PHONY: help run test lint token bench screenshots deps web-deps browser sam web-config clean

help:
	@echo "make run     start the whole app locally (apigw-local, embedded DynamoDB, web client)"
	@echo "make test    install everything needed and run every test"
	@echo "make token USER=alice ROLE=admin   print a token for the local app"
	@echo "make bench   run the benchmarks"
	@echo "make lint    ruff, cfn-lint and sam validate --lint"
	@echo "make screenshots                   refresh docs/screenshots from the browser tests"
	@echo "make web-config STACK=realtime-app web/config.json from a deployed stack's outputs"

# --- installation -----------------------------------------------------------

$(BIN)/activate:
	@test -n "$(PYTHON)" || { echo "error: need Python >= 3.11 (3.13 preferred)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml layers/shared/requirements.txt
	@echo "==> installing Python packages into $(VENV)"
	$(BIN)/pip install --quiet --progress-bar off -e '.[dev]' -r layers/shared/requirements.txt
	@touch $@

deps: $(VENV)/.installed web-deps

web/node_modules/.installed: web/package.json $(wildcard web/package-lock.json)
	@echo "==> installing the web client's npm packages"
	cd web && { [ -f package-lock.json ] && npm ci --no-audit --no-fund || npm install --no-audit --no-fund; }
	@touch $@

web-deps: $(if $(wildcard web/package.json),web/node_modules/.installed)

# Playwright cannot download its own browser here: tests drive Debian's chromium.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "==> installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	fi

# aws-sam-cli pins older boto3/pydantic: it lives in its own virtualenv.
$(SAM_VENV)/.installed:
	@echo "==> installing aws-sam-cli into $(SAM_VENV)"
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --progress-bar off aws-sam-cli
	@touch $@

sam: $(SAM_VENV)/.installed

# --- the two commands -------------------------------------------------------

$(LOCAL_SECRET):
	@mkdir -p $(dir $@)
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@
	@chmod 600 $@

run: deps $(LOCAL_SECRET)
	@echo "==> tokens for the local app (make token USER=… ROLE=… makes more)"
	@echo "user  (alice): $$(AUTH_SECRET=$$(cat $(LOCAL_SECRET)) $(PY) -m scripts.token --user alice --role user)"
	@echo "admin (admin): $$(AUTH_SECRET=$$(cat $(LOCAL_SECRET)) $(PY) -m scripts.token --user admin --role admin)"
	@$(PY) local/seed.py > .local/seed.json
	@# The secret travels in the environment, never in argv (which every local user sees in ps).
	@APIGW_LOCAL_PARAMETER_AuthSecret="$$(cat $(LOCAL_SECRET))" \
	  $(BIN)/apigw-local start --template template.yaml --template local/template.yaml \
	  --seed .local/seed.json $(ARGS)

test: deps browser sam lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: deps sam
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml --region us-east-1

token: $(VENV)/.installed $(LOCAL_SECRET)
	@AUTH_SECRET=$$(cat $(LOCAL_SECRET)) $(PY) -m scripts.token --user "$(USER)" --role "$(ROLE)"

bench: deps
	$(PY) -m bench $(ARGS)

# Refreshes the README's screenshots from the browser tests.
screenshots: deps browser
	UPDATE_DOC_SCREENSHOTS=1 $(BIN)/pytest -q tests/browser -k screenshots

# Writes web/config.json from a deployed stack's outputs, so the web client talks to AWS.
web-config: deps
	$(PY) -m scripts.web_config --stack $(STACK) --output web/config.json

clean:
	rm -rf $(VENV) $(SAM_VENV) web/node_modules .pytest_cache test-output
