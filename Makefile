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
SAM      := $(SAM_VENV)/bin/sam
CHECKOV_VENV := .venv-checkov
# `sam build` needs Lambda's python3.13 itself on PATH: its directory, wherever it is.
LAMBDA_PYTHON_DIR := $(shell for p in python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13); do \
            $$p -c 'import os, sys; assert sys.version_info[:2] == (3, 13); print(os.path.dirname(sys.executable))' 2>/dev/null && break; done)
CHROMIUM := /usr/bin/chromium

USER   ?= alice
ROLE   ?= user
ARGS   ?=
STACK  ?=
PYTEST_ARGS ?=

LOCAL_SECRET := .local/auth-secret
# The local app's DynamoDB tables and items, kept across runs (make reset empties it).
LOCAL_DATA   := .local/dynamodb

.PHONY: help run reset test lint token bench soak screenshots deps web-deps browser sam checkov web-config \
        build deploy outputs delete deploy-localstack samlocal lock clean rotate-secret

help:
	@echo "make run     start the whole app locally (apigw-local, embedded DynamoDB, web client)"
	@echo "make test    install everything needed and run every test"
	@echo "make reset   forget the local app's data (chat, transactions, totals): the next run starts from the seed"
	@echo "make token USER=alice ROLE=admin   print a token for the local app (STACK=… a deployed one)"
	@echo "make bench   every benchmark beside its baselines (ARGS=--quick: a smoke run; ARGS=\"--only rooms\")"
	@echo "make soak    500 clients, 20 rooms, 100 messages each, joins and leaves: every delivery checked (ARGS=\"--clients 40\")"
	@echo "make lint    ruff, cfn-lint, sam validate --lint and checkov"
	@echo "make screenshots                   refresh docs/screenshots from the browser tests"
	@echo "make build   sam build: the functions and the layer for Lambda (python3.13, arm64)"
	@echo "make deploy  deploy to AWS (sam deploy; --guided the first time) and publish web/"
	@echo "make outputs the deployed stack's endpoints, and web/config.json for the web client"
	@echo "make rotate-secret [STACK=…]   a new token key for the deployed stack (Secrets Manager)"
	@echo "make delete  delete the deployed stack (the ledger tables are kept)"
	@echo "make deploy-localstack   deploy to a running LocalStack (needs LOCALSTACK_AUTH_TOKEN)"
	@echo "make lock    re-pin layers/shared/requirements.txt from requirements.in"

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

# samlocal: sam pointed at LocalStack, beside sam in its virtualenv.
$(SAM_VENV)/.installed-local: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/pip install --quiet --progress-bar off aws-sam-cli-local
	@touch $@

samlocal: $(SAM_VENV)/.installed-local

# checkov pins other versions of boto3 and packaging than ours: its own virtualenv too.
$(CHECKOV_VENV)/.installed:
	@echo "==> installing checkov into $(CHECKOV_VENV)"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --progress-bar off checkov
	@touch $@

checkov: $(CHECKOV_VENV)/.installed

# --- the two commands -------------------------------------------------------

# .local/ holds the key, the local CA and the persisted tables: this user's alone (umask: the
# key is never readable by others, not even for a moment).
$(LOCAL_SECRET):
	@mkdir -p -m 700 $(dir $@)
	@umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@

run: deps $(LOCAL_SECRET)
	@echo "==> tokens for the local app (make token USER=… ROLE=… makes more)"
	@echo "user  (alice): $$(AUTH_SECRET=$$(cat $(LOCAL_SECRET)) $(PY) -m scripts.token --user alice --role user)"
	@echo "admin (admin): $$(AUTH_SECRET=$$(cat $(LOCAL_SECRET)) $(PY) -m scripts.token --user admin --role admin)"
	@chmod 700 $(dir $(LOCAL_SECRET))
	@$(PY) local/seed.py > .local/seed.json
	@# The secret travels in the environment, never in argv (which every local user sees in ps).
	@APIGW_LOCAL_PARAMETER_AuthSecret="$$(cat $(LOCAL_SECRET))" \
	  $(BIN)/apigw-local start --template template.yaml --template local/template.yaml \
	  --seed .local/seed.json --persist $(LOCAL_DATA) --reload $(ARGS)

# The seed goes only into tables that do not exist yet: after a reset, all of them.
reset:
	rm -rf $(LOCAL_DATA)

test: deps browser sam lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: deps sam checkov
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml --region us-east-1
	@# Findings that remain are skipped in the template, each with its reason.
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	  --file template.yaml

# STACK=name: a token for that deployed stack, signed with the key in its secret.
token: $(VENV)/.installed $(LOCAL_SECRET)
	@$(if $(STACK),$(PY) -m scripts.token --stack "$(STACK)",AUTH_SECRET=$$(cat $(LOCAL_SECRET)) $(PY) -m scripts.token) \
	  --user "$(USER)" --role "$(ROLE)"

# A new token key for a deployed stack, made and stored by Secrets Manager (never in argv).
rotate-secret: deps
	$(PY) -m scripts.rotate_secret $(if $(STACK),--stack "$(STACK)")

bench: deps
	$(PY) -m bench $(ARGS)

# Exactly-once, in-order delivery to room members under churn, and memory, at full size.
soak: deps
	$(PY) -m bench.soak $(ARGS)

# Refreshes the README's screenshots from the browser tests.
screenshots: deps browser
	UPDATE_DOC_SCREENSHOTS=1 $(BIN)/pytest -q tests/browser -k screenshots

# --- AWS ---------------------------------------------------------------------------------
# Stack name, region and deploy options live in samconfig.toml (`sam deploy --guided` adds
# the region and your answers to it).

build: sam
	@test -n "$(LAMBDA_PYTHON_DIR)" || { echo "error: sam build needs Python 3.13 (Lambda's runtime): install it, e.g. 'pyenv install 3.13'"; exit 1; }
	PATH="$(LAMBDA_PYTHON_DIR):$$PATH" $(SAM) build

deploy: build deps
	@if grep -q '^region' samconfig.toml; then $(SAM) deploy; else \
	  echo "==> first deploy: answer SAM's questions (they are saved in samconfig.toml)."; \
	  echo "    AuthSecret signs the app's tokens: paste a new one, e.g. from"; \
	  echo "    python3 -c 'import secrets; print(secrets.token_urlsafe(48))', and keep it."; \
	  $(SAM) deploy --guided; fi
	$(PY) -m scripts.web_publish

# The endpoints, and web/config.json so the web client talks to the stack.
outputs: deps
	$(PY) -m scripts.web_config --output web/config.json $(if $(STACK),--stack $(STACK))

web-config: outputs

delete: sam deps
	$(PY) -m scripts.web_publish --empty
	$(SAM) delete
	@echo "The ledger tables (Transactions, WeeklyIncome) are kept (Retain, deletion protection)."

# LocalStack checked first (one line if it is not running or LOCALSTACK_AUTH_TOKEN is unset),
# then built and deployed with samlocal; the AuthSecret goes through a private samconfig file.
deploy-localstack: deps
	@$(PY) -m scripts.localstack_deploy --check
	@$(MAKE) --no-print-directory samlocal build $(LOCAL_SECRET)
	$(PY) -m scripts.localstack_deploy

lock: $(BIN)/activate
	$(BIN)/pip install --quiet --progress-bar off pip-tools
	cd layers/shared && ../../$(BIN)/pip-compile --quiet --strip-extras --no-header \
	  --no-emit-index-url --no-emit-find-links --annotation-style=line \
	  $(foreach p,boto3 botocore s3transfer jmespath python-dateutil six urllib3,--unsafe-package $(p)) \
	  -o requirements.txt requirements.in

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam web/node_modules .pytest_cache test-output
