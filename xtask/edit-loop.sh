#!/usr/bin/env bash
# Measures the edit loop: with `autoflow serve` and `cargo xtask build-plugins --watch` running, the
# time from saving a change to plugins/notes/src/lib.rs to `curl` seeing it, five times.
# Run from the repository root after `cargo xtask build-plugins` and `cargo build -p autoflow-host`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/debug/autoflow"
PORT=3999
DATA=$(mktemp -d)
unset DATABASE_URL REDIS_URL
AUTOFLOW_USER_PASSWORD='a long enough password' "$BIN" users create --email loop@example.com --data "$DATA" >/dev/null
"$BIN" serve --listen "127.0.0.1:$PORT" --data "$DATA" --plugins dist/plugins >"$DATA/serve.log" 2>&1 &
SERVE=$!
cargo xtask build-plugins --watch >"$DATA/watch.log" 2>&1 &
WATCH=$!
cp plugins/notes/src/lib.rs "$DATA/lib.rs"
trap 'kill $SERVE $WATCH 2>/dev/null; cp "$DATA/lib.rs" plugins/notes/src/lib.rs' EXIT
until grep -q "watching for changes" "$DATA/watch.log"; do sleep 0.3; done
sleep 1
TOKEN=$(curl -s "localhost:$PORT/auth/login" -H 'content-type: application/json' \
  -d '{"email":"loop@example.com","password":"a long enough password"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
for round in 1 2 3 4 5; do
  word="round$round-$RANDOM"
  start=$(date +%s%N)
  sed -i "s/problems.finish(\"the note is not valid[^\"]*\")/problems.finish(\"the note is not valid $word\")/" \
    plugins/notes/src/lib.rs
  until curl -s "localhost:$PORT/api/notes" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"title":""}' | grep -q "$word"; do sleep 0.02; done
  echo "save → curl, round $round: $(( ($(date +%s%N) - start) / 1000000 )) ms"
  sleep 1.5
done
