# Herald's recipes. Run them through ./dev, which installs nats-server and just first.
set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build and start the whole stack locally with demo traffic (nats-server spawned, data in ./.herald/).
up *ARGS:
    cargo run --release -p herald -- up --demo {{ARGS}}

# Every test: formatting, lints, docs, the Rust suite (real nats-server), the browser client.
test: lint rust-test web-test

# The Rust suite: every crate against a real nats-server.
rust-test:
    cargo nextest run --workspace --profile ci
    cargo test --workspace --doc --quiet

# The browser client: unit tests, then real headless Chromium against the real services.
web-test: web-deps
    cd web && npm test
    cd web && npm run e2e

# Headless Chromium (Debian's package) and the client's dev dependencies.
web-deps:
    command -v chromium >/dev/null || { s=$([ "$(id -u)" = 0 ] || echo sudo); $s apt-get update -qq && $s env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
    cd web && npm ci --no-audit --no-fund --loglevel=error

# Formatting, clippy with warnings as errors, and rustdoc without warnings.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# Benchmarks (release build, loopback only): results under bench/results/.
bench:
    cargo run --release -p herald-bench -- all
