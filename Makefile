# Outband — every task a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

KUBE_VERSION ?= v1.36.3
ETCD_VERSION ?= v3.6.16
export KUBE_VERSION ETCD_VERSION
CARGO ?= cargo

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

##@ Setup
.PHONY: envtest
envtest: ## Build kube-apiserver, kube-controller-manager, kubectl and etcd into the cache (skipped when cached)
	@hack/install-envtest.sh

.PHONY: deps
deps: envtest oidc-provider ## Everything the tests need (control plane, OpenID provider, tools)

##@ Build
.PHONY: build
build: ## Build every binary
	$(CARGO) build --workspace --bins

.PHONY: crds
crds: ## Regenerate the CRD YAML (charts/outband/crds) and docs/reference/crds.md from crds/src
	$(CARGO) run -q -p outband-crds --bin outband-crdgen -- charts/outband/crds docs/reference/crds.md

##@ Quality
.PHONY: lint
lint: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

##@ Demo
KEEP ?=
.PHONY: demo
demo: deps ## Run the whole story locally (KEEP=1 leaves it running until Ctrl-C)
	@echo "==> building the operator, the sidecar and the demo (first build takes a few minutes)"
	$(CARGO) build --bins
	@$(CARGO) run -q -p outband-tests --bin outband-demo -- $(if $(KEEP),--keep)

##@ Benchmarks
.PHONY: bench
bench: bench-sidecar ## Every benchmark (criterion; speed targets live here, never in tests)

##@ Test
.PHONY: test
test: deps lint build ## Run every test, after fmt and clippy (installs what they need first)
	@hack/cargo-test.sh --workspace --no-fail-fast

##@ Helm (webhook + chart; issue 5)
HELM_VERSION ?= v3.22.0
export HELM_VERSION

.PHONY: helm
helm: ## Build helm from the Go module proxy into the cache (skipped when cached)
	@hack/install-helm.sh

# The chart tests need helm: make it part of `deps` without touching the line above.
deps: helm

##@ OpenID provider for tests (tests/oidc-provider: npm oidc-provider, pinned by its lockfile)
OIDC_PROVIDER_DIR := tests/oidc-provider
NPM ?= npm

.PHONY: oidc-provider
oidc-provider: $(OIDC_PROVIDER_DIR)/node_modules/.package-lock.json ## Install the test OpenID provider's npm packages (skipped when current)

# npm writes node_modules/.package-lock.json; reinstall when it is missing or older than the lockfile.
$(OIDC_PROVIDER_DIR)/node_modules/.package-lock.json: $(OIDC_PROVIDER_DIR)/package-lock.json $(OIDC_PROVIDER_DIR)/package.json
	@command -v node >/dev/null && command -v $(NPM) >/dev/null \
	  || { echo "oidc-provider: Node.js 20+ and npm must be on PATH" >&2; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
	  || { echo "oidc-provider: Node.js 20+ needed, found $$(node --version)" >&2; exit 1; }
	@echo ">> oidc-provider: npm ci in $(OIDC_PROVIDER_DIR) (node $$(node --version))"
	cd $(OIDC_PROVIDER_DIR) && $(NPM) ci --no-audit --no-fund
	@touch $@
	@echo ">> oidc-provider: installed oidc-provider $$(node -p 'require("./$(OIDC_PROVIDER_DIR)/node_modules/oidc-provider/package.json").version')"

##@ Sidecar (issue 4): tools, benchmarks and load figures
.PHONY: tools
tools: ## Install promtool (Debian `prometheus`) and wrk with apt-get (skipped when on PATH)
	@hack/install-tools.sh

# The sidecar's metrics test needs promtool: make it part of `deps` without touching the line above.
deps: tools

.PHONY: bench-sidecar
bench-sidecar: ## Criterion benchmarks of a sidecar decision (decode+verify per alg, cache hit, subscription lookup)
	$(CARGO) bench -p outband-sidecar --bench validation

.PHONY: load-sidecar
load-sidecar: tools ## Requests/s of the release sidecar on loopback with wrk (warm cache, 10,000 distinct tokens, no cache)
	@hack/load-sidecar.sh
