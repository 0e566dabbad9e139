# fieldsync: `make demo` plays a field trip on this machine; `make test` runs
# every test, installing what it needs. See README.md.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
BIN       := bin/fieldsync
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with
# a bare "context deadline exceeded" when a duration runs out under load
# (golang/go#75804, fixed in Go 1.27). 300000x is about 10 s a target here.
FUZZTIME  ?= 300000x

# Fuzz targets run briefly in `make test`: package and target name.
FUZZ_TARGETS := \
	./crdt:FuzzDecodeOp \
	./agent/wire:FuzzReadFrame \
	./agent/wire:FuzzChunkFrames \
	./agent/identity:FuzzUnmarshalCredential \
	./agent/identity:FuzzDecodeRevocation \
	./agent/schema:FuzzParseAndValidate \
	./agent/api:FuzzCreateBody \
	./agent/vault:FuzzOpenSealed \
	./agent/attach:FuzzDecodeManifest

# The power-cut campaign (docs/testing.md, "Power cuts"): `make powercut
# CUTS=200`; POWERCUT_SEED and POWERCUT_MODEL (ordered, strict) replay or vary it.
CUTS          ?= 200
POWERCUT_SEED ?= 1

# The kill -9 campaign (docs/testing.md): `make crash` kills agents CRASHES
# times; `make test` runs 30 kills of it with the other end-to-end tests.
# CRASH_SEED picks the schedule; CRASH_ONLY=i repeats kill i's plan.
CRASHES    ?= 1000
CRASH_SEED ?= 1
CRASH_ONLY ?=

.PHONY: all build test unit fuzz bench demo lint tidy cross clean deps powercut sim crash

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/fieldsync

# deps installs what the test suite needs on a fresh Debian machine.
deps:
	@bash .ci/deps.sh

# The real-server tests must run in CI, not skip: deps installs PostgreSQL and
# Chromium, and these variables turn "missing" into a failure.
test: export FIELDSYNC_REQUIRE_POSTGRES = 1
test: export FIELDSYNC_REQUIRE_BROWSER = 1
test: export FIELDSYNC_REQUIRE_FUSE = 1
test: export FIELDSYNC_NETNS_TEST = $(shell [ "$$(id -u)" = 0 ] && command -v ip >/dev/null && echo 1)
test: deps build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) fuzz
	$(MAKE) sim

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# The power cuts need FUSE (root and /dev/fuse): required here, as in make test.
powercut: export FIELDSYNC_REQUIRE_FUSE = 1
powercut:
	CUTS=$(CUTS) POWERCUT_SEED=$(POWERCUT_SEED) $(GO) test -count=1 -timeout 90m -v -run '^TestE2EPowerCuts$$' ./cmd/fieldsync

crash: export FIELDSYNC_REQUIRE_POSTGRES = 1
crash: deps
	FIELDSYNC_CRASHES=$(CRASHES) FIELDSYNC_CRASH_SEED=$(CRASH_SEED) FIELDSYNC_CRASH_ONLY=$(CRASH_ONLY) \
		$(GO) test -count=1 -timeout 6h -run '^TestE2EKill9Campaign$$' -v ./cmd/fieldsync/

bench: build
	$(GO) run ./cmd/bench --bin $(BIN)

demo: build
	$(GO) run ./cmd/demo --bin $(BIN)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

tidy:
	@cp go.mod /tmp/fieldsync-go.mod.bak; cp go.sum /tmp/fieldsync-go.sum.bak
	@$(GO) mod tidy
	@if ! diff -q go.mod /tmp/fieldsync-go.mod.bak >/dev/null || ! diff -q go.sum /tmp/fieldsync-go.sum.bak >/dev/null; then \
		cp /tmp/fieldsync-go.mod.bak go.mod; cp /tmp/fieldsync-go.sum.bak go.sum; \
		echo "go.mod/go.sum are not tidy: run go mod tidy and commit"; exit 1; fi

cross:
	@for os in linux windows; do for arch in amd64 arm64; do \
		ext=; [ $$os = windows ] && ext=.exe; \
		echo "build dist/fieldsync-$$os-$$arch$$ext"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -ldflags '$(LDFLAGS)' -o dist/fieldsync-$$os-$$arch$$ext ./cmd/fieldsync || exit 1; \
	done; done

clean:
	rm -rf bin dist

# The deterministic simulation of a deployment (docs/testing.md). SEEDS
# seeds from FIRST (1000: about 2.5 minutes on two idle cores, what make
# test spends on it); SEED=N replays one seed (KEEP=0,3-7 a shrunk schedule).
SEEDS ?= 1000
FIRST ?= 1
sim:
	$(GO) test ./agent -run '^TestSim$$' -count=1 -timeout 600m -v \
		$(if $(SEED),-seed $(SEED) $(if $(KEEP),-keep $(KEEP)),-seeds $(SEEDS) -first $(FIRST))
