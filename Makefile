# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# Integration suites run this many tests at once (each has its own containerd).
IT_THREADS ?= 2

.PHONY: all deps build run stop test fmt-check clippy doc unit integration conformance bench clean-run install uninstall deb goldens

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --bins

# Builds, starts a private containerd with the CRI plugin disabled, imports the
# locally built pause and busybox images, and runs cri-server in the foreground.
run: build
	@./scripts/run.sh

# Stops what `make run` left running (containerd and its containers).
stop:
	@./scripts/run.sh stop

test: deps fmt-check clippy doc unit integration conformance

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

unit:
	$(CARGO) test --workspace --exclude cri-tests --no-fail-fast

integration:
	$(CARGO) build -p cri-server --bins
	$(CARGO) test -p cri-tests --no-fail-fast -- --test-threads=$(IT_THREADS)

# critest's validation suite against cri-server, critest's images built
# locally; skipped with a notice when no critest 1.29+ is found, unless
# CRI_REQUIRE_CONFORMANCE=1. `make conformance CONFORMANCE_ARGS=--reference`
# runs it against containerd's own CRI plugin instead.
conformance:
	@./scripts/conformance.sh $(CONFORMANCE_ARGS)

# cri-spec's golden specs and cri-metadata's fixtures, regenerated from
# containerd's own CRI plugin (not part of `make test`; review the diff).
goldens: deps
	@./scripts/regen-goldens.sh

# Measurements side by side with containerd (not part of `make test`):
# the passthrough cost, then `cri-bench --harness` (cri-server vs
# containerd's own CRI plugin, each on its own containerd); the tables are
# also written to target/bench/latest.md. BENCH_ARGS adds cri-bench flags,
# e.g. BENCH_ARGS="--rounds 5 --scales 100,500,1000,2000". One cargo
# invocation, so cri-server's library is compiled once for both binaries.
BENCH_ARGS ?=
bench: deps
	$(CARGO) build --release -p cri-server --bin cri-server -p cri-tests --bin passthrough-bench --bin cri-bench
	CRI_SERVER_BIN=target/release/cri-server target/release/passthrough-bench --calls 200
	@mkdir -p target/bench
	CRI_SERVER_BIN=target/release/cri-server target/release/cri-bench --harness --out target/bench/latest.md $(BENCH_ARGS)

# Node install: the binaries, the systemd unit and the default config
# (`cri-server config default`). `make install PREFIX=/usr DESTDIR=/tmp/root`;
# CARGO_PROFILE=dev installs the debug build.
PREFIX ?= /usr/local
DESTDIR ?=
CARGO_PROFILE ?= release
PROFILE_DIR := $(if $(filter dev,$(CARGO_PROFILE)),debug,$(CARGO_PROFILE))
BINDIR := $(PREFIX)/bin
UNITDIR := $(PREFIX)/lib/systemd/system
SHAREDIR := $(PREFIX)/share/cri-server

install:
	$(CARGO) build --profile $(CARGO_PROFILE) -p cri-server --bins
	install -D -m 0755 target/$(PROFILE_DIR)/cri-server $(DESTDIR)$(BINDIR)/cri-server
	install -D -m 0755 target/$(PROFILE_DIR)/cri-ctl $(DESTDIR)$(BINDIR)/cri-ctl
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's|^ExecStart=/usr/bin/cri-server|ExecStart=$(BINDIR)/cri-server|' packaging/cri-server.service > $(DESTDIR)$(UNITDIR)/cri-server.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/cri-server.service
	install -D -m 0644 packaging/config.toml $(DESTDIR)$(SHAREDIR)/config.toml

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cri-server $(DESTDIR)$(BINDIR)/cri-ctl
	rm -f $(DESTDIR)$(UNITDIR)/cri-server.service
	rm -f $(DESTDIR)$(SHAREDIR)/config.toml
	-rmdir $(DESTDIR)$(SHAREDIR) 2>/dev/null

# A Debian package with the same files (cargo-deb, installed by
# scripts/install-deps.sh): target/debian/cri-server_<version>_<arch>.deb.
deb: deps
	$(CARGO) deb -p cri-server --profile $(CARGO_PROFILE)
