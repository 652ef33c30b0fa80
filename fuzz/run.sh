#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 60) over its corpus
# in fuzz/corpus/<target>, which grows with what libFuzzer finds. A crash is written to
# fuzz/artifacts/<target>/ and fails the run: copy it into fuzz/corpus/<target>/ so that
# `cargo test` here replays it for ever, then fix the bug.
#
# cargo-fuzz wants nightly; on stable, RUSTC_BOOTSTRAP=1 unlocks the flags it passes, and
# `-s none` skips AddressSanitizer (whose runtime only ships with nightly). Safe Rust needs
# ASan little: panics, overflows and failed assertions are what these targets look for.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(signature formats cursor ws_frame jwt)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none -O
for t in "${targets[@]}"; do
  echo "==> fuzzing $t for ${seconds}s" >&2
  mkdir -p "corpus/$t"
  cargo fuzz run -s none -O "$t" "corpus/$t" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
# The replay on plain stable (RUSTC_BOOTSTRAP would change every fingerprint and rebuild all),
# on the workspace's target dir, like `just fuzz-corpus`.
env -u RUSTC_BOOTSTRAP CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target}" cargo test --quiet
