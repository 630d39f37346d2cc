#!/usr/bin/env bash
# Scale-out on Redis, side by side in one run (BENCHMARKS.md, "Scale-out on Redis"):
#
#   throughput  HTTP heartbeats and logins (wrk) of one Redis-mode node, one embedded
#               node (--store memory, and redb), and the naive service
#               (examples/naive_redis.rs) on the same Redis, rounds alternating; for
#               the Redis-backed ones, Redis commands per HTTP request (INFO
#               commandstats before and after each run).
#   storm       10,000 simultaneous logins onto 1,000 seats through three Redis-mode
#               nodes (usher load, three --url) against one embedded node (memory,
#               redb), alternating.
#   sweep       the sweeper's Redis cost per tick at 10,000 tenants with nothing due:
#               each tenant holds one session an hour from its deadline; INFO
#               commandstats over SWEEP_SECS ticks of one node.
#
#   apt-get install -y redis-server redis-tools wrk
#   cargo build --release --bin usher --example naive_redis
#   benches/redis/scale-out.sh                   # all three parts
#   PARTS="storm sweep" benches/redis/scale-out.sh
#
# Settings (environment): PARTS, ROUNDS (3), SECONDS_EACH (10), THREADS (2),
# CONNECTIONS (64), STORM (10000), SEATS (1000), STORM_ROUNDS (3), SWEEP_TENANTS
# (10000), SWEEP_SECS (30). Every server listens on a free loopback port and is
# killed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
parts=${PARTS:-throughput storm sweep}
rounds=${ROUNDS:-3}
secs=${SECONDS_EACH:-10}
threads=${THREADS:-2}
conns=${CONNECTIONS:-64}
storm=${STORM:-10000}
seats=${SEATS:-1000}
storm_rounds=${STORM_ROUNDS:-3}
sweep_tenants=${SWEEP_TENANTS:-10000}
sweep_secs=${SWEEP_SECS:-30}
usher=target/release/usher
naive=target/release/examples/naive_redis
work=$(mktemp -d)
export USHER_ADMIN_TOKEN=bench-admin-token
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
wait_redis() { for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.1; done; exit 1; }

# Starts a Redis on a free port; sets $redis_port and $redis_pid.
start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis-$redis_port.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_redis "$redis_port"
}

# Starts `usher serve` on a free port with these flags; sets $node_url and $node_pid.
start_usher() {
  local port
  port=$(free_port)
  RUST_LOG=warn "$usher" serve --addr "127.0.0.1:$port" "$@" >"$work/usher-$port.log" 2>&1 &
  node_pid=$!
  pids+=("$node_pid")
  node_url="http://127.0.0.1:$port"
  wait_http "$node_url/healthz"
}

# Script calls (FCALL of Usher's pool, EVALSHA of its other scripts and of the
# naive service) from INFO commandstats.
script_calls() { echo $(( $(redis_calls "$1" fcall) + $(redis_calls "$1" evalsha) )); }

# One Redis counter from INFO commandstats: calls of command $2, or all calls.
redis_calls() {
  redis-cli -p "$1" INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v cmd="$2" '
    /^cmdstat_/ { name = substr($1, 9); if (name == "info") next;
                  if (cmd == "" || name == cmd) n += $3 }
    END { print n + 0 }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

# Creates records tenant $2 for logins on $1 (room for 1,000,000 users); prints its
# API key.
login_tenant() {
  curl -fsS -X PUT -H "Authorization: Bearer $USHER_ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d '{"model":"records","idle_timeout_secs":3600,"max_users":1000000}' "$1/v1/tenants/$2" |
    sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p'
}

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One wrk run: $1 name, $2 url, $3 script, $4 redis port or "-". Prints
# "name rps requests non2xx script-calls/req get/req commands/req cpu-us/req
# server-cpu-us/req redis-cpu-us/req": Redis commands per HTTP request, and the CPU
# the server process and Redis spent per request (Redis idles while an embedded node
# runs).
wrk_run() {
  local name=$1 url=$2 script=$3 rport=$4 e=0 g=0 all=0
  local s0 r0
  s0=$(cpu_ticks "${spids[$name]}")
  r0=$(cpu_ticks "$redis_pid")
  if [ "$rport" != - ]; then
    e=$(script_calls "$rport")
    g=$(redis_calls "$rport" get)
    all=$(redis_calls "$rport" "")
  fi
  TOKENS="$work/tokens-$name.txt" TENANT="$login_tenant" KEY="${keys[$name]:-}" USERS=100000 \
    wrk -t"$threads" -c"$conns" -d"${secs}s" -s "$script" "$url" >"$work/wrk.txt"
  local sc rc
  sc=$(( $(cpu_ticks "${spids[$name]}") - s0 ))
  rc=$(( $(cpu_ticks "$redis_pid") - r0 ))
  if [ "$rport" != - ]; then
    e=$(( $(script_calls "$rport") - e ))
    g=$(( $(redis_calls "$rport" get) - g ))
    all=$(( $(redis_calls "$rport" "") - all ))
  fi
  awk -v nm="$name" -v e="$e" -v g="$g" -v a="$all" -v sc="$sc" -v rc="$rc" -v hz="$hz" -v redis="$rport" '
    / requests in / { n = $1 }
    /Non-2xx/ { bad = $NF }
    /Requests\/sec/ { rps = $2 }
    END {
      us = 1e6 / hz / n
      if (redis == "-") printf "%s %s %s %d - - - %.1f %.1f %.1f\n", nm, rps, n, bad, (sc + rc) * us, sc * us, rc * us
      else printf "%s %s %s %d %.4f %.4f %.2f %.1f %.1f %.1f\n", nm, rps, n, bad, e / n, g / n, a / n, (sc + rc) * us, sc * us, rc * us
    }' "$work/wrk.txt"
}

declare -A keys urls rports spids
login_tenant=wrk-login
redis_pid=

if [[ " $parts " == *" throughput "* ]]; then
  echo "== throughput: wrk -t$threads -c$conns -d${secs}s, $rounds rounds, alternating"
  start_redis
  rport=$redis_port
  start_usher --store redis --redis-url "redis://127.0.0.1:$rport/0"
  urls[redis]=$node_url; rports[redis]=$rport; spids[redis]=$node_pid
  start_usher --store memory
  urls[memory]=$node_url; rports[memory]=-; spids[memory]=$node_pid
  start_usher --data-dir "$work/redb"
  urls[redb]=$node_url; rports[redb]=-; spids[redb]=$node_pid
  nport=$(free_port)
  "$naive" "127.0.0.1:$nport" "redis://127.0.0.1:$rport/0" >"$work/naive.log" 2>&1 &
  pids+=($!)
  urls[naive]="http://127.0.0.1:$nport"; rports[naive]=$rport; spids[naive]=$!
  sleep 0.5
  for name in redis memory redb naive; do
    USHER_URL=${urls[$name]} benches/wrk/make-tokens.sh 8 128 >"$work/tokens-$name.txt"
  done
  for kind in heartbeat login; do
    for round in $(seq "$rounds"); do
      # A fresh tenant per login round, users cycling through 100,000 ids: no user
      # piles up sessions across rounds.
      login_tenant=wrk-login-$round
      for name in redis memory redb naive; do
        [ "$kind" = login ] && keys[$name]=$(login_tenant "${urls[$name]}" "$login_tenant")
        wrk_run "$name" "${urls[$name]}" "benches/wrk/$kind.lua" "${rports[$name]}" |
          sed "s/^/$kind round $round: /" | tee -a "$work/throughput.txt"
      done
    done
  done
  echo "-- medians (req/s; CPU-us per request of the server process + Redis; Redis per HTTP request: script calls (FCALL + EVALSHA), GET calls, all commands incl. those inside scripts)"
  for kind in heartbeat login; do
    for name in redis memory redb naive; do
      rows=$(grep "^$kind round [0-9]*: $name " "$work/throughput.txt")
      printf '%-9s %-6s %8.0f req/s  %6.1f cpu-us/req (server %5.1f, Redis %5.1f)  scripts %s  get %s  commands %s\n' "$kind" "$name" \
        "$(median $(echo "$rows" | awk '{ print $5 }'))" \
        "$(median $(echo "$rows" | awk '{ print $11 }'))" \
        "$(median $(echo "$rows" | awk '{ print $12 }'))" \
        "$(median $(echo "$rows" | awk '{ print $13 }'))" \
        "$(median $(echo "$rows" | awk '{ print $8 }') 2>/dev/null || echo -)" \
        "$(median $(echo "$rows" | awk '{ print $9 }') 2>/dev/null || echo -)" \
        "$(median $(echo "$rows" | awk '{ print $10 }') 2>/dev/null || echo -)"
    done
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
fi

if [[ " $parts " == *" storm "* ]]; then
  echo
  echo "== storm: $storm simultaneous logins onto $seats seats, $storm_rounds rounds, alternating"
  start_redis
  rport=$redis_port
  three=()
  for _ in 1 2 3; do
    start_usher --store redis --redis-url "redis://127.0.0.1:$rport/0"
    three+=(--url "$node_url")
  done
  start_usher --store memory
  memory_url=$node_url
  start_usher --data-dir "$work/redb-storm"
  redb_url=$node_url
  for round in $(seq "$storm_rounds"); do
    before_e=$(script_calls "$rport")
    echo "-- round $round: three Redis-mode nodes"
    "$usher" load "${three[@]}" --storm "$storm" --seats "$seats" | grep -E 'login|storm:|invariant|per node'
    echo "   script calls for the storm (tenant set-up and check included): $(( $(script_calls "$rport") - before_e ))"
    echo "-- round $round: one embedded node, --store memory"
    "$usher" load --url "$memory_url" --storm "$storm" --seats "$seats" | grep -E 'login|storm:|invariant'
    echo "-- round $round: one embedded node, redb"
    "$usher" load --url "$redb_url" --storm "$storm" --seats "$seats" | grep -E 'login|storm:|invariant'
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
fi

if [[ " $parts " == *" sweep "* ]]; then
  echo
  echo "== sweep: $sweep_tenants tenants, one live session each, nothing due, one node, ${sweep_secs}s of ticks"
  start_redis
  rport=$redis_port
  start_usher --store redis --redis-url "redis://127.0.0.1:$rport/0"
  python3 - "$node_url" "$sweep_tenants" <<'EOF'
import http.client, json, sys, os
from urllib.parse import urlparse
url, n = urlparse(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection(url.hostname, url.port)
admin = {"Authorization": "Bearer " + os.environ["USHER_ADMIN_TOKEN"], "Content-Type": "application/json"}
def call(method, path, body, headers):
    conn.request(method, path, json.dumps(body), headers)
    r = conn.getresponse(); data = r.read()
    if r.status >= 300: sys.exit(f"{method} {path}: {r.status} {data[:200]}")
    return json.loads(data)
for i in range(n):
    t = f"sweep-{i}"
    key = call("PUT", f"/v1/tenants/{t}", {"model": "concurrent", "seats": 5, "idle_timeout_secs": 3600}, admin)["api_key"]
    call("POST", f"/v1/tenants/{t}/sessions", {"user": "u0", "client": "bench"},
         {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
EOF
  echo "due index: $(redis-cli -p "$rport" ZCARD usher:due) tenants, earliest due in $(( ($(redis-cli -p "$rport" ZRANGE usher:due 0 0 WITHSCORES | tail -1) - $(date +%s%3N)) / 1000 )) s"
  sleep 2
  redis-cli -p "$rport" CONFIG RESETSTAT >/dev/null
  sleep "$sweep_secs"
  redis-cli -p "$rport" INFO commandstats | tr -d '\r' | grep -v cmdstat_config
  redis-cli -p "$rport" INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v secs="$sweep_secs" '
    /^cmdstat_/ && $1 != "cmdstat_info" && $1 != "cmdstat_config" { calls += $3; usec += $5 }
    /^cmdstat_evalsha/ { e = $3; eu = $5 }
    END { printf "per tick (one node, ticks every 1 s): %.2f EVALSHA, %.2f commands, %.1f us of Redis time in EVALSHA\n", e / secs, calls / secs, eu / (e ? e : 1) }'
fi
