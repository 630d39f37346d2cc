#!/usr/bin/env bash
# HTTP heartbeat throughput of `usher serve` against the bare actix-web floor
# (examples/http_floor.rs), side by side in one run, alternating so that both see
# the same machine. Prints each round and the ratios of the medians: of requests per
# second, and of requests per CPU-second of the server process (which a machine shared
# with other work disturbs far less).
#
#   cargo build --release --bin usher --example http_floor
#   benches/wrk/compare.sh            # 5 rounds of 10 s each, 2 wrk threads, 64 connections
#
# Settings (environment): ROUNDS, SECONDS_EACH, THREADS, CONNECTIONS, TENANTS,
# SESSIONS (per tenant), USHER_PORT, FLOOR_PORT, USHER_BIN (another build of usher to
# compare), and SERVER_CPUS / CLIENT_CPUS (taskset CPU lists: pin the servers and wrk
# apart, e.g. SERVER_CPUS=0 CLIENT_CPUS=1, so that wrk does not take the servers' CPU).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-5}
secs=${SECONDS_EACH:-10}
threads=${THREADS:-2}
conns=${CONNECTIONS:-64}
usher_port=${USHER_PORT:-18080}
floor_port=${FLOOR_PORT:-18081}
usher_bin=${USHER_BIN:-target/release/usher}
server_pin=()
client_pin=()
[ -n "${SERVER_CPUS:-}" ] && server_pin=(taskset -c "$SERVER_CPUS")
[ -n "${CLIENT_CPUS:-}" ] && client_pin=(taskset -c "$CLIENT_CPUS")
work=$(mktemp -d)
export USHER_ADMIN_TOKEN=bench-admin-token

RUST_LOG=warn "${server_pin[@]}" "$usher_bin" serve --addr "127.0.0.1:$usher_port" --data-dir "$work/data" >"$work/usher.log" 2>&1 &
usher_pid=$!
USHER_WORKERS=${USHER_WORKERS:-} "${server_pin[@]}" target/release/examples/http_floor "127.0.0.1:$floor_port" >"$work/floor.log" 2>&1 &
floor_pid=$!
trap 'kill $usher_pid $floor_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$usher_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

USHER_URL="http://127.0.0.1:$usher_port" benches/wrk/make-tokens.sh "${TENANTS:-8}" "${SESSIONS:-128}" >"$work/tokens.txt"
export TOKENS="$work/tokens.txt"

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_sec=$(getconf CLK_TCK)

# One wrk run against a port; prints requests/s, requests per CPU-second of the
# server process, and the non-2xx count.
run() {
  local before after
  before=$(cpu_ticks "$2")
  "${client_pin[@]}" wrk -t"$threads" -c"$conns" -d"${secs}s" -s benches/wrk/heartbeat.lua "http://127.0.0.1:$1" >"$work/wrk.txt"
  after=$(cpu_ticks "$2")
  awk -v cpu="$(( after - before ))" -v hz="$ticks_per_sec" '
    / requests in / { n = $1 }
    /Non-2xx/ { bad = $NF }
    /Requests\/sec/ { rps = $2 }
    END { print rps, (cpu ? n / (cpu / hz) : 0), (bad ? bad : 0) }' "$work/wrk.txt"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

usher_rps=()
floor_rps=()
usher_cpu=()
floor_cpu=()
for round in $(seq "$rounds"); do
  read -r u ucpu ubad < <(run "$usher_port" "$usher_pid")
  read -r f fcpu fbad < <(run "$floor_port" "$floor_pid")
  usher_rps+=("$u")
  floor_rps+=("$f")
  usher_cpu+=("$ucpu")
  floor_cpu+=("$fcpu")
  printf 'round %d: usher %6.0f req/s %6.0f req/cpu-s (non-2xx %s) | floor %6.0f req/s %6.0f req/cpu-s (non-2xx %s) | ratio %.3f, per cpu-s %.3f\n' \
    "$round" "$u" "$ucpu" "$ubad" "$f" "$fcpu" "$fbad" "$(ratio "$u" "$f")" "$(ratio "$ucpu" "$fcpu")"
done
um=$(median "${usher_rps[@]}")
fm=$(median "${floor_rps[@]}")
uc=$(median "${usher_cpu[@]}")
fc=$(median "${floor_cpu[@]}")
printf 'median throughput:       usher %.0f req/s, floor %.0f req/s, ratio %.3f\n' "$um" "$fm" "$(ratio "$um" "$fm")"
printf 'median per CPU-second:   usher %.0f req, floor %.0f req, ratio %.3f\n' "$uc" "$fc" "$(ratio "$uc" "$fc")"
