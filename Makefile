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
# keeps `make test` near 20 minutes on 2 cores; the long, mostly waiting tests (grace periods, retention, schedules) run in parallel.
UNIT_PKGS          = $(shell $(GO) list ./... | grep -v '/integration$$')
UNIT_FLAGS         ?= -race -count=1
INTEGRATION_FLAGS  ?= -count=1 -timeout 20m -parallel 4

# Where `make install` puts things; DESTDIR is prepended to each (staged
# installs, packaging).
PREFIX             ?= /usr/local
BINDIR             ?= $(PREFIX)/bin
UNITDIR            ?= $(PREFIX)/lib/systemd/system
MANDIR             ?= $(PREFIX)/share/man
BASHCOMPDIR        ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR         ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR        ?= $(PREFIX)/share/fish/vendor_completions.d

# `cowvol --version` reads the VCS revision from the build information; go
# build stamps it only when the module root has a .git directory (not in a
# git worktree) and GOFLAGS does not say -buildvcs=false, so make passes it
# too (cmd/cowvol/version.go).
GIT_REVISION       := $(shell git rev-parse HEAD 2>/dev/null)
GIT_MODIFIED       := $(shell git status --porcelain 2>/dev/null | grep -q . && echo true || echo false)
LDFLAGS            := -X main.buildRevision=$(GIT_REVISION) -X main.buildModified=$(GIT_MODIFIED)

.DEFAULT_GOAL := help
.PHONY: help build install uninstall run test prereqs testreport fmt-check vet test-unit test-integration test-race-daemon torture lint bench clean gofuse-diff

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## Build bin/cowvol, stamped with the git revision (cowvol --version)
	$(GO) build -buildvcs=auto -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cowvol

install: build ## Install the binary, the systemd unit, bash/zsh/fish completion and the man page (PREFIX=/usr/local, DESTDIR)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/cowvol
	sed 's|/usr/local/bin/cowvol|$(BINDIR)/cowvol|g' contrib/systemd/cowvol.service > $(DESTDIR)$(UNITDIR)/cowvol.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/cowvol.service
	$(abspath $(BIN)) completion bash > $(DESTDIR)$(BASHCOMPDIR)/cowvol
	$(abspath $(BIN)) completion zsh > $(DESTDIR)$(ZSHCOMPDIR)/_cowvol
	$(abspath $(BIN)) completion fish > $(DESTDIR)$(FISHCOMPDIR)/cowvol.fish
	$(abspath $(BIN)) man > $(DESTDIR)$(MANDIR)/man8/cowvol.8
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		echo "make install: now systemctl daemon-reload && systemctl enable --now cowvol"; fi

uninstall: ## Remove what `make install` installed (same PREFIX and DESTDIR); stop the service first
	rm -f $(DESTDIR)$(BINDIR)/cowvol $(DESTDIR)$(UNITDIR)/cowvol.service $(DESTDIR)$(MANDIR)/man8/cowvol.8 \
		$(DESTDIR)$(BASHCOMPDIR)/cowvol $(DESTDIR)$(ZSHCOMPDIR)/_cowvol $(DESTDIR)$(FISHCOMPDIR)/cowvol.fish

run: build ## Build and run `cowvol daemon` with its defaults (root; /var/lib/cowvol, /mnt/cowvol, /run/cowvol/cowvol.sock)
	@if [ "$$(id -u)" != 0 ]; then echo "make run: the daemon mounts FUSE and serves /run/cowvol: run as root" >&2; exit 1; fi
	./$(BIN) daemon

# Every go test runs through tools/testreport, which prints what go test
# prints and records its events in $(REPORT_DIR); `make test` ends with
# its summary: every skipped test, loudly, and under COWVOL_REQUIRE_ROOT=1
# a failure for any that is not opt-in (TEST_OPT_IN: tests that skip unless
# their own variable asks for them).
TESTREPORT         := bin/testreport
REPORT_DIR         := bin/test-report
TEST_OPT_IN        ?= ^(TestBigStart|TestBigStartChild)$$
TEST_STEPS         := fmt-check vet test-unit test-integration test-race-daemon
# As root, `make test` first installs what is missing (make prereqs).
TEST_PREREQS       := $(if $(filter 0,$(shell id -u)),prereqs)

test: $(TEST_PREREQS) ## Everything, as CI runs it: prereqs (as root), gofmt check, go vet, unit tests (-race), integration tests (root), end-to-end again under -race, a summary of what skipped
	@rm -rf $(REPORT_DIR)
	@status=0; \
	for step in $(TEST_STEPS); do $(MAKE) --no-print-directory $$step || status=1; done; \
	$(TESTREPORT) -summary -allow-skip '$(TEST_OPT_IN)' $(REPORT_DIR)/*.json || status=1; \
	exit $$status

prereqs: $(STATICCHECK) ## Install what the tests need and this Debian machine lacks: fuse3, e2fsprogs, fio, awscli, util-linux, systemd; MinIO (pinned); staticcheck (root)
	GO=$(GO) tools/prereqs.sh

testreport: ## Build bin/testreport, which runs go test -json and summarizes skips
	$(GO) build -o $(TESTREPORT) ./tools/testreport

fmt-check: ## Fail listing files that gofmt would change
	@files="$$(gofmt -l .)"; \
	if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi

vet: ## go vet ./...
	$(GO) vet ./...

test-unit: testreport ## Unit tests with -race (every package but integration)
	$(TESTREPORT) -o $(REPORT_DIR)/unit.json -- $(GO) test -json $(UNIT_FLAGS) $(UNIT_PKGS)

test-integration: testreport ## End-to-end tests: real daemon, FUSE, loop, ext4 (root; COWVOL_REQUIRE_ROOT=1 fails instead of skipping)
	$(TESTREPORT) -stream -o $(REPORT_DIR)/integration.json -- $(GO) test -json $(INTEGRATION_FLAGS) -v ./integration/

# The daemon under -race is 3-9x slower (docs/ARCHITECTURE.md), so the whole
# integration suite under it would take most of CI's budget: this runs the
# tests that exercise the most concurrency (crash trials, takeovers of a
# live connection, snapshots of a live file system, two hosts on one bucket, the SDK session, other users).
RACE_TESTS ?= ^(TestTortureCrashTrials|TestServerCrashUnderLoad|TestGracefulUpgradesUnderLoad|TestSnapshotLiveExt4AndRestore|TestTwoHostsShareS3SnapshotStore|TestAWSSDKDrivesCowvol|TestSocketAccessByUser|TestEncryptedVolumeSession)$$

test-race-daemon: testreport ## End-to-end tests with the daemon and the tests built with -race (root)
	COWVOL_DAEMON_RACE=1 COWVOL_TAKEOVER_TRIALS=8 $(TESTREPORT) -stream -o $(REPORT_DIR)/race-daemon.json -- \
		$(GO) test -json -race $(INTEGRATION_FLAGS) -run '$(RACE_TESTS)' -v ./integration/

TORTURE_TRIALS     ?= 50

torture: ## Crash trials (TORTURE_TRIALS=50; replay one: COWVOL_TORTURE_SEED=S), faults and load at full size (root)
	COWVOL_REQUIRE_ROOT=1 COWVOL_TORTURE_TRIALS=$(TORTURE_TRIALS) COWVOL_TORTURE_LONG=1 \
		$(GO) test -count=1 -timeout 90m -run '^TestTorture' -v ./integration/

lint: vet $(STATICCHECK) ## go vet and staticcheck
	$(STATICCHECK) ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

bench: ## fio and snapshot figures against a plain file and qemu-storage-daemon, restore from MinIO against aws s3 cp, in one run (root; installs fio, qemu, awscli); writes bench.json
	@command -v fio >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q fio; }
	@test -x /usr/bin/qemu-storage-daemon -a -x /usr/bin/qemu-img || { apt-get update -q && apt-get install -y -q --no-install-recommends qemu-system-common qemu-utils; }
	@test -x /usr/bin/aws || { apt-get update -q && apt-get install -y -q awscli; }
	COWVOL_REQUIRE_ROOT=1 COWVOL_BENCH_JSON=$(CURDIR)/bench.json $(GO) test ./integration/ -run '^$$' -bench Cowvol -benchtime 1x -timeout 60m -v

gofuse-diff: ## Regenerate third_party/go-fuse.patch, cowvol's changes to go-fuse (third_party/go-fuse/PATCHES.md)
	third_party/gofuse-diff.sh

clean: ## Remove bin/
	rm -rf bin/
