#!/usr/bin/env bash
# Property-based API testing of ingest and the gateway against proto/openapi.yaml with
# schemathesis: no 5xx, every response (status, headers, body) as the spec says.
#
# Installs schemathesis into .venv-schemathesis, starts `herald up` on free loopback ports
# with an API key, a bearer-verified Sequin source and a JWT secret, runs schemathesis
# against ingest (webhooks, publish API, ops) and the gateway (long-poll, stats, ops; the
# SSE and WebSocket endpoints stream forever and are covered by the Rust and browser suites),
# then stops the stack. Exit code: schemathesis's (nonzero on any failure).
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
venv=.venv-schemathesis
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
cargo build --quiet -p herald
herald="${CARGO_TARGET_DIR:-target}/debug/herald"

work=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port=$(port); ingest=$(port); gateway=$(port); notifier=$(port); stats=$(port)
jwt_secret="schemathesis-jwt-secret-0123456789"
cat > "$work/herald.toml" <<TOML
[ingest]
listen = "127.0.0.1:$ingest"
[ingest.api_keys]
acme = ["st-api-key"]
[ingest.sources.crm]
tenant = "acme"
format = "sequin"
verify = { scheme = "bearer" }
secrets = ["st-bearer"]
[gateway]
listen = "127.0.0.1:$gateway"
# Long-polls answer within 2 s, so the run takes seconds, not minutes (the spec says waits
# are capped at poll_max_wait).
poll_max_wait = "2s"
[gateway.jwt]
secret = "$jwt_secret"
[notifier]
listen = "127.0.0.1:$notifier"
[stats]
listen = "127.0.0.1:$stats"
TOML
"$herald" up --config "$work/herald.toml" --data-dir "$work/data" --nats-port "$nats_port" > "$work/herald.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for url in "http://127.0.0.1:$ingest/readyz" "http://127.0.0.1:$gateway/readyz"; do
  for _ in $(seq 1 120); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "$url" >/dev/null || { echo "not ready: $url"; tail -50 "$work/herald.log"; exit 1; }
done
token=$("$herald" token --tenant acme --topics '*' --secret "$jwt_secret")

st="$venv/bin/st"
# What the contract promises: no 5xx, and status, content type, headers and body as
# specified. (`all` adds input-strictness checks; Herald is lenient where the spec is
# strict in two places: an empty `since`, and `Idempotency-Key` ignored when the body has
# an `id` — see docs/chaos.md.)
checks=${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}
max=${SCHEMATHESIS_MAX_EXAMPLES:-50}
status=0
echo "==> ingest" >&2
"$st" run "$root/proto/openapi.yaml" --url "http://127.0.0.1:$ingest" \
  --include-path-regex '^/(v1/webhooks|v1/events|healthz|readyz|metrics)' \
  -H "Authorization: Bearer st-api-key" \
  --checks "$checks" --max-examples "$max" --request-timeout 10 || status=$?
echo "==> gateway" >&2
"$st" run "$root/proto/openapi.yaml" --url "http://127.0.0.1:$gateway" \
  --include-path-regex '^/(v1/poll|v1/stats|healthz|readyz|metrics)' \
  -H "Authorization: Bearer $token" \
  --checks "$checks" --max-response-time 10 --max-examples "$max" --request-timeout 15 || status=$?
exit $status
