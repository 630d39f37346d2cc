#!/usr/bin/env bash
# Logs in sessions on a running Usher server for benches/wrk/heartbeat.lua and
# prints their tokens, one per line.
#
#   USHER_URL=http://127.0.0.1:8080 USHER_ADMIN_TOKEN=... \
#     benches/wrk/make-tokens.sh 8 128 > tokens.txt
#
# Arguments: tenants (default 8) and sessions per tenant (default 128). The tenants
# (wrk-0 ... wrk-N) get a one-hour idle timeout, so the sessions outlive the run.
set -euo pipefail
tenants=${1:-8}
per_tenant=${2:-128}
url=${USHER_URL:-http://127.0.0.1:8080}
admin=${USHER_ADMIN_TOKEN:?set USHER_ADMIN_TOKEN to the server\'s admin token}

for t in $(seq 0 $((tenants - 1))); do
  tenant="wrk-$t"
  curl -fsS -X DELETE -H "Authorization: Bearer $admin" "$url/v1/tenants/$tenant" >/dev/null 2>&1 || true
  created=$(curl -fsS -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"model\":\"concurrent\",\"seats\":$per_tenant,\"idle_timeout_secs\":3600}" \
    "$url/v1/tenants/$tenant")
  key=$(printf '%s' "$created" | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
  for u in $(seq 0 $((per_tenant - 1))); do
    login=$(curl -fsS -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      -d "{\"user\":\"u$u\",\"client\":\"wrk\"}" "$url/v1/tenants/$tenant/sessions")
    printf '%s\n' "$(printf '%s' "$login" | sed -n 's/.*"session":"\([^"]*\)".*/\1/p')"
  done
done
