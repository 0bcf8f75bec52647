# Parley — the two commands: `make dev` and `make test`. Everything they need is installed
# here, project-locally (the Python venv in .venv holds the local AWS endpoints and cfn-lint).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PYTHON ?= python3
CARGO ?= cargo
ENV_FILE := $(if $(wildcard .env),.env,.env.example)
LOCAL_BIN ?= target/debug/parley-local

.PHONY: help dev test venv browser-deps build-dev unit check-template lint fmt sam-build clean bench bench-campaign bench-functions bench-cost fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: local/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r local/requirements.txt
	touch $@

venv: $(VENV)/.installed ## install the local endpoints (moto) and cfn-lint into .venv

# The browser test (tests/browser.rs) drives Debian's chromium with Playwright: chromium from apt
# when missing, the pinned npm packages when the lockfile changed (quick when both are there).
browser-deps: ## install what the browser test needs (Debian chromium, npm ci in tests/browser)
	.ci/browser-deps.sh

build-dev:
	$(CARGO) build --locked -p parley-local

# Settings from the env file; a variable set in the caller's environment keeps its value.
dev: venv build-dev ## run the whole system on 127.0.0.1:3000 (PARLEY_PORT) with local AWS endpoints
	@exec local/with-env.sh $(ENV_FILE) local/with-endpoints.sh $(LOCAL_BIN)

# Each function's AWS calls are recorded under target/iam-records during the tests, then held
# against its policy in template.yaml (.ci/check-iam.py).
IAM_RECORDS := $(CURDIR)/target/iam-records

test: venv browser-deps ## run every test (starts and stops its own local endpoints)
	.ci/check-template.sh
	@rm -rf $(IAM_RECORDS); mkdir -p target $(IAM_RECORDS)
	@set -o pipefail; PARLEY_IAM_RECORD_DIR=$(IAM_RECORDS) \
	  local/with-env.sh .env.example local/with-endpoints.sh $(CARGO) test --locked --workspace 2>&1 | tee target/test-output.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' target/test-output.log
	$(VENV)/bin/python .ci/check-iam.py template.yaml $(IAM_RECORDS)

# Benchmarks are not tests: `make test` never builds them. The dev profile: the figures are
# bound by the local endpoints (moto, which serialises DynamoDB), not by our code (the run
# prints its own CPU time), and the release profile's LTO build takes long on a small machine.
N ?= 100000
bench-campaign: venv ## campaign fan-out benchmark against the local endpoints (N=100000 recipients)
	N=$(N) local/with-env.sh $(ENV_FILE) local/with-endpoints.sh \
	  $(CARGO) bench --locked --profile dev -p parley-tests --bench campaign_fanout

bench-cost: venv ## AWS requests, units and $ per journey step against the local endpoints (docs/cost.md)
	local/with-env.sh $(ENV_FILE) local/with-endpoints.sh \
	  $(CARGO) bench --locked --profile dev -p parley-tests --bench cost

lint: ## clippy and rustfmt check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check

fmt: ## format the code
	$(CARGO) fmt --all

sam-build: ## size-tuned release build of every function for deployment (needs cargo-lambda, zig)
	sam build

clean: ## remove build output and the venv
	$(CARGO) clean
	rm -rf $(VENV) .aws-sam

# Release profile (the one `sam build` ships); timing, so never part of `make test`.
bench: ## print the performance figures of docs/performance.md (release build)
	$(CARGO) run --locked --release -p parley-bench
	$(MAKE) --no-print-directory bench-functions

FUNCTIONS := channel-webhook consent-api agent-api campaign-api shop-webhook inbound-worker \
  outbound-sender event-bridge campaign-dispatcher cart-reminder shop-reconciler

# Every function binary as `sam build` ships it (release profile: about 7 min of LTO each on
# 2 cores), then each run under the Lambda Runtime API stand-in against the local endpoints.
bench-functions: venv ## per function: binary size, init, first and warm invocations, CPU, RSS
	$(CARGO) build --locked --release $(addprefix -p ,$(FUNCTIONS))
	local/with-env.sh $(ENV_FILE) local/with-endpoints.sh \
	  $(CARGO) bench --locked --profile dev -p parley-tests --bench functions

# Fuzzing (fuzz/, never part of `make test`; its corpus is: parley::fuzzing's tests replay it).
# cargo-fuzz needs nightly-only compiler flags (-Z sanitizer coverage). This machine and CI have
# only the pinned stable toolchain and cannot download a nightly, so RUSTC_BOOTSTRAP=1 lets that
# stable compiler accept them. No sanitizer: the parsers are safe Rust, and ASan would only slow
# the runs; panics, overflows (debug assertions) and stack exhaustion are still caught.
FUZZ_SECONDS ?= 600
CARGO_FUZZ_VERSION := 0.13.1
FUZZ_TARGETS := meta_delivery shopify_webhook woocommerce_webhook signature_header chat_command flows_file
fuzz: ## run every fuzz target FUZZ_SECONDS (600) each, then minimise the corpus
	@command -v cargo-fuzz >/dev/null && cargo fuzz --version | grep -q " $(CARGO_FUZZ_VERSION)" \
	  || $(CARGO) install --locked cargo-fuzz@$(CARGO_FUZZ_VERSION)
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none
	@set -e; cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t; \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536; \
	  RUSTC_BOOTSTRAP=1 cargo fuzz cmin --sanitizer none $$t corpus/$$t; \
	done
