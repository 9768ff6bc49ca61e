#!/usr/bin/env bash
# Runs every check convrfm has, on a bare machine: installs what it needs
# (Rust targets and components, C compilers, the Fashion-MNIST package,
# QEMU), then formatting, lints, all tests, the no_std builds of
# convrfm-core and its C API for the microcontroller targets, and the
# firmware under QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "toolchain: targets and components"
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi
rustup component add rustfmt clippy

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "C and C++ compilers for the C API tests (installed if missing)"
if ! command -v cc >/dev/null || ! command -v c++ >/dev/null; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcc g++ libc6-dev
fi

step "cargo test (workspace)"
cargo test --workspace

step "tests that need Debian's dataset-fashion-mnist (installed if missing)"
if [ ! -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dataset-fashion-mnist
fi
cargo test -p convrfm-train --lib data::fashion_mnist -- --ignored

step "convrfm-core builds no_std for Cortex-M4F and Cortex-M0"
cargo build -p convrfm-core --target thumbv7em-none-eabihf
cargo build -p convrfm-core --target thumbv6m-none-eabi

step "the C API's static library builds for Cortex-M4F and Cortex-M0"
cargo build -p convrfm-ffi --release --target thumbv7em-none-eabihf
cargo build -p convrfm-ffi --release --target thumbv6m-none-eabi

step "firmware in QEMU: bit-identical to the host, memory budgets, faults, footprint"
./scripts/firmware-test.sh

step "all checks passed"
