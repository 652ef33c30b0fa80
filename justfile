# Herald's recipes. Run them through ./dev, which installs nats-server and just first.
set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build and start the whole stack locally with demo traffic (nats-server spawned, data in ./.herald/).
up *ARGS:
    cargo run --release -p herald -- up --demo {{ARGS}}

# Every test: formatting, lints, docs, the Rust suite (real nats-server), the browser client,
# then the whole system: a CI-sized chaos soak and schemathesis against the OpenAPI spec.
test: lint rust-test web-test system-test

# The system under fire: the CI-sized chaos soak with every fault kind (fixed seed, so a failure replays) and schemathesis.
system-test:
    just chaos-ci --seed 3
    just schemathesis

# The Rust suite: every crate against a real nats-server.
rust-test:
    cargo nextest run --workspace --profile ci
    cargo test --workspace --doc --quiet
    just fuzz-corpus

# The fuzz corpus (every input a fuzzer found interesting or crashing) replayed on stable Rust.
# It shares the workspace's target dir: only libFuzzer and the fuzz crate are built on top.
fuzz-corpus:
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo test --manifest-path fuzz/Cargo.toml --quiet

# The 3-node NATS cluster test: the stream leader SIGKILLed mid-flow, nothing lost or duplicated.
cluster-test:
    cargo nextest run -p herald -p herald-test-support cluster

# The browser client: unit tests, then real headless Chromium against the real services.
web-test: web-deps
    cd web && npm test
    cd web && npm run e2e

# Headless Chromium (Debian's package) and the client's dev dependencies.
web-deps:
    command -v chromium >/dev/null || { s=$([ "$(id -u)" = 0 ] || echo sudo); $s apt-get update -qq && $s env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
    cd web && npm ci --no-audit --no-fund --loglevel=error

# Formatting, no function over 80 lines in crates/*/src (tests aside), clippy with warnings as errors, and rustdoc without warnings.
lint:
    cargo fmt --all -- --check
    .ci/long-fns --max 80
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# Benchmarks (release build, loopback only, 10k clients; a few minutes): results under bench/results/. ARGS: a scenario (fanout|storm|ingest|stats|state) and its flags, default all.
bench *ARGS="all":
    cargo build --release -p herald-gateway -p herald-bench
    ulimit -n 20000 && "${CARGO_TARGET_DIR:-target}/release/herald-bench" {{ARGS}}

# Benchmark smoke run (~30 s, 200 clients): asserts no gaps and no duplicates, never a timing; saves nothing.
bench-quick:
    cargo build --release -p herald-gateway -p herald-bench
    ulimit -n 4096 && "${CARGO_TARGET_DIR:-target}/release/herald-bench" quick

# Chaos soak (~5 min): the real binaries under load while every component, nats-server included, is SIGKILLed, frozen (SIGSTOP), cut off from NATS by a proxy (delay/drop/half-open/blackhole), or its stream fills; JSON report, exit 1 on any violation. ARGS: --seed N to replay.
chaos *ARGS:
    cargo build --bins -p herald-ingest -p herald-gateway -p herald-notifier -p herald-stats -p herald-chaos
    "${CARGO_TARGET_DIR:-target}/debug/herald-chaos" --duration 5m {{ARGS}}

# The CI-sized chaos soak: every fault kind (each at least twice), 150 s of faults, ~2½ min in all.
chaos-ci *ARGS:
    just chaos --duration 150s --kill-every 1s..3s --pause 100ms..6s {{ARGS}}

# Fuzz every parser facing the network (signatures, CDC formats, cursors, WebSocket frames, JWTs) for FUZZ_SECONDS each (default 60), then replay the corpus.
fuzz *TARGETS:
    fuzz/run.sh {{TARGETS}}

# schemathesis against proto/openapi.yaml for ingest and the gateway (installs it into .venv-schemathesis): no 5xx, responses as the spec says.
schemathesis:
    crates/herald-chaos/scripts/schemathesis.sh
