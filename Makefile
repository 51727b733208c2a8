# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# Integration suites run this many tests at once (each has its own containerd).
IT_THREADS ?= 2

.PHONY: all deps build run stop test fmt-check clippy doc unit integration conformance bench clean-run

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

# Measurements side by side with containerd (not part of `make test`).
bench: deps
	$(CARGO) build --release -p cri-server --bin cri-server
	$(CARGO) build -p cri-tests --bin passthrough-bench
	CRI_SERVER_BIN=target/release/cri-server target/debug/passthrough-bench --calls 200
