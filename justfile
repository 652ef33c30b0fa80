# Herald's recipes. Run them through ./dev, which installs nats-server and just first.
set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build and start the whole stack locally (nats-server spawned, data under ./.herald/).
up *ARGS:
    cargo run --release -p herald -- up {{ARGS}}

# Every test: formatting, lints, docs, then the whole workspace against a real nats-server.
test: lint
    cargo nextest run --workspace --profile ci
    cargo test --workspace --doc

# Formatting, clippy with warnings as errors, and rustdoc without warnings.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# Benchmarks (release build, loopback only): results under bench/results/.
bench:
    cargo run --release -p herald-bench -- all
