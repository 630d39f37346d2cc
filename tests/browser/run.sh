#!/usr/bin/env bash
# Runs the browser tests: usher.js against a scripted server, then the demo and
# dashboard scenario against a freshly started `usher serve --demo`.
#   tests/browser/run.sh [path-to-usher-binary]   (default: target/release/usher, built if missing)
# Leaves the screenshots in target/browser/: dashboard.png, dashboard-usage-1440.png,
# dashboard-390.png, dashboard-queue.png, licence-preview.png, demo-queue.png and
# demo-refusal.png (each layout also checked by measurement or by its text).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "browser tests need Chromium at /usr/bin/chromium (or \$CHROMIUM)" >&2
    exit 1
  fi
fi
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund)

usher="${1:-target/release/usher}"
[ -x "$usher" ] || cargo build --release --bin usher

out=target/browser
mkdir -p "$out"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
token=$(node -e 'console.log(require("crypto").randomBytes(24).toString("hex"))')
data=$(mktemp -d)
USHER_ADMIN_TOKEN="$token" "$usher" serve --demo --addr "127.0.0.1:$port" --data-dir "$data" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"' EXIT

for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

node tests/browser/client.mjs
node tests/browser/scenario.mjs "http://127.0.0.1:$port" "$token" "$out/dashboard.png"
