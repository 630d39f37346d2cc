#!/usr/bin/env bash
# Usher's admission against the same decision as a Redis script (admit.lua), side by
# side on one machine: the storm (5,000 simultaneous logins onto 500 seats) and the
# steady login throughput at 64 connections.
#
#   apt-get install -y redis-server redis-tools wrk
#   cargo build --release --bin usher
#   benches/redis/compare.sh
#
# Settings (environment): STORM (5000), SEATS (500), CONNECTIONS (64), SECONDS_EACH
# (10), REQUESTS (redis-benchmark requests for the throughput run, 500000),
# REDIS_PORT (6390), USHER_PORT (18080).
set -euo pipefail
cd "$(dirname "$0")/../.."
storm=${STORM:-5000}
seats=${SEATS:-500}
conns=${CONNECTIONS:-64}
secs=${SECONDS_EACH:-10}
requests=${REQUESTS:-500000}
redis_port=${REDIS_PORT:-6390}
usher_port=${USHER_PORT:-18080}
work=$(mktemp -d)
export USHER_ADMIN_TOKEN=bench-admin-token

redis-server --port "$redis_port" --save '' --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
RUST_LOG=warn target/release/usher serve --addr "127.0.0.1:$usher_port" --data-dir "$work/data" >"$work/usher.log" 2>&1 &
usher_pid=$!
trap 'kill $redis_pid $usher_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  redis-cli -p "$redis_port" PING >/dev/null 2>&1 &&
    curl -fsS "http://127.0.0.1:$usher_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
sha=$(redis-cli -p "$redis_port" SCRIPT LOAD "$(cat benches/redis/admit.lua)")

echo "== storm: $storm simultaneous logins onto $seats seats"
echo "-- usher over HTTP (usher load --storm)"
target/release/usher load --url "http://127.0.0.1:$usher_port" --storm "$storm" --seats "$seats"
echo "-- Redis script (redis-benchmark, one connection per login)"
redis-benchmark -p "$redis_port" -c "$storm" -n "$storm" -r 1000000000 \
  EVALSHA "$sha" 1 storm "$seats" 600000 s:__rand_int__ | sed -n '/Summary/,$p'
echo "admitted by Redis: $(redis-cli -p "$redis_port" ZCARD storm)"

echo
echo "== steady logins, $conns connections, no seat limit reached"
echo "-- usher over HTTP (wrk, benches/wrk/login.lua, records licence)"
key=$(curl -fsS -X PUT -H "Authorization: Bearer $USHER_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"model":"records","idle_timeout_secs":3600}' "http://127.0.0.1:$usher_port/v1/tenants/wrk-login" |
  sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
TENANT=wrk-login KEY=$key wrk -t2 -c"$conns" -d"${secs}s" --latency -s benches/wrk/login.lua \
  "http://127.0.0.1:$usher_port" | grep -E 'Requests/sec|Non-2xx|^ +(50|99)%'
echo "-- Redis script (redis-benchmark)"
redis-benchmark -p "$redis_port" -c "$conns" -n "$requests" -r 1000000000 \
  EVALSHA "$sha" 1 steady 1000000000 600000 s:__rand_int__ | sed -n '/Summary/,$p'
