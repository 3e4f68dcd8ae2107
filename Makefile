# framefleet — the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin/framefleet
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Keep the whole suite under 20 minutes on 2 cores.
TEST_TIMEOUT ?= 18m
# GitHub's OpenAPI description and webhook examples for the action tests (npm, ~385 MB): installed once per
# machine, outside the checkout, so every worktree and clone shares them. action tests read FRAMEFLEET_GITHUB_FIXTURES.
GITHUB_FIXTURES ?= $(or $(FRAMEFLEET_GITHUB_FIXTURES),$(HOME)/.cache/framefleet/github-fixtures)
export FRAMEFLEET_GITHUB_FIXTURES := $(GITHUB_FIXTURES)
FUZZTIME  ?= 20s
# make test-stress: how many suites in a row, and the stress-ng CPU workers beside each (2 = every core of
# a 2-core machine); stress-ng stops by itself after STRESS_TIMEOUT if make is killed.
STRESS_RUNS    ?= 3
STRESS_CPUS    ?= 2
STRESS_TIMEOUT ?= 30m
ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.7
# cfn-lint checks deploy/framefleet.yaml (make lint, go test ./deploy). It is a Python package, not a
# Debian one: when missing it is installed into .tools/cfn-lint (a virtualenv), which recipes find on PATH.
CFN_LINT_VERSION ?= 1.51.0
export PATH := $(CURDIR)/.tools/cfn-lint/bin:$(PATH)

.PHONY: help
help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install Blender, FFmpeg, git-lfs and fonts (Debian packages) when missing; check Go
	@command -v $(GO) >/dev/null || { echo "Go is missing: install Go 1.21 or newer (https://go.dev/dl); it fetches the Go version go.mod names by itself"; exit 1; }
	@missing=""; \
	for p in blender ffmpeg ffprobe git-lfs; do command -v $$p >/dev/null || missing=1; done; \
	test -e /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf || missing=1; \
	if [ -n "$$missing" ]; then \
	  echo "installing blender, ffmpeg, git-lfs and fonts-dejavu-core (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq blender ffmpeg git-lfs fonts-dejavu-core; \
	fi

.PHONY: cfn-lint
cfn-lint: ## install cfn-lint into .tools/cfn-lint when it is missing
	@command -v cfn-lint >/dev/null || { \
	  python3 -c 'import ensurepip, venv' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }; \
	  echo "installing cfn-lint $(CFN_LINT_VERSION) into .tools/cfn-lint"; \
	  python3 -m venv .tools/cfn-lint && .tools/cfn-lint/bin/pip install -q "cfn-lint==$(CFN_LINT_VERSION)"; \
	}

.PHONY: github-fixtures
github-fixtures: ## install the pinned npm packages the action tests validate against (once per machine)
	@bash action/testdata/npm/install.sh action/testdata/npm "$(GITHUB_FIXTURES)"

.PHONY: build
build: ## build bin/framefleet
	$(GO) build -o $(BIN) ./cmd/framefleet

.PHONY: demo
demo: deps build ## render the bundled example scene locally and print where the video is
	./$(BIN) render examples/demo.blend --out renders

.PHONY: test
test: deps cfn-lint github-fixtures ## run every test (real Blender and FFmpeg), plus a short fuzz run
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./pipeline/blend

.PHONY: test-stress
test-stress: ## make test with both cores kept busy by stress-ng, STRESS_RUNS times in a row (before a release)
	@command -v stress-ng >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng; }
	@for i in $$(seq $(STRESS_RUNS)); do \
	  echo "test-stress: run $$i of $(STRESS_RUNS), beside stress-ng --cpu $(STRESS_CPUS)"; \
	  stress-ng --cpu $(STRESS_CPUS) --timeout $(STRESS_TIMEOUT) --quiet & stress=$$!; \
	  $(MAKE) --no-print-directory test; rc=$$?; \
	  kill $$stress 2>/dev/null; wait $$stress 2>/dev/null; \
	  [ $$rc = 0 ] || { echo "test-stress: run $$i failed"; exit $$rc; }; \
	done

.PHONY: image-test
image-test: github-fixtures ## build both images and run them as Batch and GitHub do (docker if a daemon runs, else podman)
	bash .ci/image-test.sh

.PHONY: bench
bench: deps build ## Go benchmarks plus whole-command comparisons (see docs/BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bash bench/run.sh

.PHONY: lint
lint: cfn-lint ## gofmt, go vet, actionlint, shellcheck, yamllint, cfn-lint
	@# Tracked and new (not yet committed, not ignored) files alike.
	@unformatted="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	test -z "$$unformatted" || { echo "not gofmt'd (run gofmt -w on them):"; echo "$$unformatted"; exit 1; }
	$(GO) vet ./...
	@command -v shellcheck >/dev/null && command -v yamllint >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq shellcheck yamllint; }
	$(GO) run $(ACTIONLINT) -shellcheck=shellcheck .github/workflows/*.yml examples/workflows/*.yml
	shellcheck .ci/run $$(git ls-files --cached --others --exclude-standard '*.sh')
	yamllint -c .yamllint.yml .
	cfn-lint deploy/framefleet.yaml

.PHONY: clean
clean:
	rm -rf bin renders
