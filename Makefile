# cowvol — `make help` lists the targets.

GO                 ?= go
BIN                := bin/cowvol
STATICCHECK_VERSION := v0.8.2
GOBIN_DIR          := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
STATICCHECK        := $(GOBIN_DIR)/staticcheck

# Unit packages run under -race. The integration package runs without it:
# its own code is a thin harness, the daemon it drives is a separate binary
# (build that one with -race via COWVOL_DAEMON_RACE=1), and its I/O-heavy
# tests (mkfs.ext4 on 1 TiB, 1 GiB through ext4 -> loop -> FUSE) are what
# keeps `make test` well under 15 minutes on 2 cores.
UNIT_PKGS          = $(shell $(GO) list ./... | grep -v '/integration$$')
UNIT_FLAGS         ?= -race -count=1
INTEGRATION_FLAGS  ?= -count=1 -timeout 12m

.DEFAULT_GOAL := help
.PHONY: help build run test fmt-check vet test-unit test-integration torture lint bench clean

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## Build bin/cowvol
	$(GO) build -o $(BIN) ./cmd/cowvol

run: build ## Build and run `cowvol daemon` with its defaults (root; /var/lib/cowvol, /mnt/cowvol, /run/cowvol/cowvol.sock)
	@if [ "$$(id -u)" != 0 ]; then echo "make run: the daemon mounts FUSE and serves /run/cowvol: run as root" >&2; exit 1; fi
	./$(BIN) daemon

test: fmt-check vet test-unit test-integration ## gofmt check, go vet, unit tests (-race), integration tests (root)

fmt-check: ## Fail listing files that gofmt would change
	@files="$$(gofmt -l .)"; \
	if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi

vet: ## go vet ./...
	$(GO) vet ./...

test-unit: ## Unit tests with -race (every package but integration)
	$(GO) test $(UNIT_FLAGS) $(UNIT_PKGS)

test-integration: ## End-to-end tests: real daemon, FUSE, loop, ext4 (root; COWVOL_REQUIRE_ROOT=1 fails instead of skipping)
	$(GO) test $(INTEGRATION_FLAGS) -v ./integration/

TORTURE_TRIALS     ?= 50

torture: ## Crash trials (TORTURE_TRIALS=50; replay one: COWVOL_TORTURE_SEED=S), faults and load at full size (root)
	COWVOL_REQUIRE_ROOT=1 COWVOL_TORTURE_TRIALS=$(TORTURE_TRIALS) COWVOL_TORTURE_LONG=1 \
		$(GO) test -count=1 -timeout 90m -run '^TestTorture' -v ./integration/

lint: vet $(STATICCHECK) ## go vet and staticcheck
	$(STATICCHECK) ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

bench: ## fio and snapshot figures against a plain file, in one run (root; installs fio); writes bench.json
	@command -v fio >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q fio; }
	COWVOL_REQUIRE_ROOT=1 $(GO) test ./integration/ -run '^$$' -bench Cowvol -benchtime 1x -timeout 60m -v

clean: ## Remove bin/
	rm -rf bin/
