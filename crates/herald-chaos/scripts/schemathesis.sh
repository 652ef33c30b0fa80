#!/usr/bin/env bash
# Property-based API testing of ingest and the gateway against proto/openapi.yaml with
# schemathesis: no 5xx, every response (status, headers, body) as the spec says.
#
# Installs schemathesis into .venv-schemathesis, starts the stack as deployed on free loopback
# ports: nats-server from deploy/nats/single.conf with NATS auth on (passwords from
# deploy/gen-env, streams provisioned by `herald provision` as admin, each service binary as
# its own NATS identity), with an API key, a bearer-verified Sequin source and a JWT secret;
# runs schemathesis against ingest (webhooks, publish API, ops) and the gateway (long-poll,
# stats, history, presence, public long-poll, ops; the SSE and WebSocket endpoints stream forever and are covered by the Rust and
# browser suites), then stops the stack. Exit code: schemathesis's (nonzero on any failure,
# or if nats-server refused a service anything).
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
venv=.venv-schemathesis
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
cargo build --quiet -p herald -p herald-ingest -p herald-gateway -p herald-notifier -p herald-stats
bin="${CARGO_TARGET_DIR:-target}/debug"
herald="$bin/herald"
nats_server="${HERALD_NATS_SERVER:-$root/.venv/bin/nats-server}"
[ -x "$nats_server" ] || nats_server=nats-server

work=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port=$(port); ingest=$(port); gateway=$(port); notifier=$(port); stats=$(port)
jwt_secret="schemathesis-jwt-secret-0123456789"
cat > "$work/herald.toml" <<TOML
[nats]
url = "nats://127.0.0.1:$nats_port"
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
[gateway.public.acme]
topics = ["prices"]
[gateway.presence.acme]
topics = ["lobby"]
[notifier]
listen = "127.0.0.1:$notifier"
[stats]
listen = "127.0.0.1:$stats"
TOML

# NATS as deployed: the real config files (only the store moved into $work), random passwords.
mkdir -p "$work/nats" "$work/logs"
cp deploy/nats/*.conf "$work/nats/"
sed -i "s|store_dir: .*|store_dir: \"$work/data\"|" "$work/nats/single.conf"
deploy/gen-env -o "$work/nats.env" >/dev/null
set -a; . "$work/nats.env"; set +a
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
"$nats_server" -c "$work/nats/single.conf" -a 127.0.0.1 -p "$nats_port" -m -1 > "$work/logs/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "Server is ready" "$work/logs/nats.log" && break; sleep 0.1; done
as_identity() { # user: the HERALD_NATS__* variables of that identity
  local upper; upper=$(echo "$1" | tr a-z A-Z)
  local pass_var="HERALD_NATS_${upper}_PASSWORD"
  echo "HERALD_NATS__USER=$1 HERALD_NATS__PASSWORD=${!pass_var} HERALD_NATS__INBOX_PREFIX=_INBOX_$1"
}
env $(as_identity admin) "$herald" provision --config "$work/herald.toml" > "$work/logs/provision.log" 2>&1 \
  || { echo "provisioning failed"; cat "$work/logs/provision.log"; tail -20 "$work/logs/nats.log"; exit 1; }
for svc in ingest gateway notifier stats; do
  env $(as_identity $svc) "$bin/herald-$svc" --config "$work/herald.toml" > "$work/logs/$svc.log" 2>&1 &
  pids+=($!)
done
for url in "http://127.0.0.1:$ingest/readyz" "http://127.0.0.1:$gateway/readyz"; do
  for _ in $(seq 1 120); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "$url" >/dev/null || { echo "not ready: $url"; tail -50 "$work"/logs/*.log; exit 1; }
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
  --include-path-regex '^/(v1/poll|v1/stats|v1/history|v1/presence|v1/public/[^/]+/poll|healthz|readyz|metrics)' \
  -H "Authorization: Bearer $token" \
  --checks "$checks" --max-response-time 10 --max-examples "$max" --request-timeout 15 || status=$?
if grep "Violation" "$work/logs/nats.log"; then
  echo "nats-server refused a service something its identity should allow" >&2
  status=1
fi
exit $status
