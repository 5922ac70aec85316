#!/usr/bin/env bash
# Smoke test of the embedded default: `make run` with no DATABASE_URL/REDIS_URL, wait for /health,
# log in as the demo agent, stop everything.
set -euo pipefail
cd "$(dirname "$0")/.."
# A free port, never a fixed one: other checkouts may run their own portal on this machine.
# make run also listens on PORT+10 (CPMS simulator) and PORT+420 (localstripe): all three must be free.
PORT="${SMOKE_PORT:-$(python3 - <<'PY'
import socket


def free(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


while True:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if port + 420 < 65535 and free(port + 10) and free(port + 420):
        print(port)
        break
PY
)}"
export PORT
unset DATABASE_URL REDIS_URL
export PARKINGHQ_VAR_DIR="$(mktemp -d)"
log="$PARKINGHQ_VAR_DIR/run.log"
setsid make run >"$log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM -- "-$pid" 2>/dev/null || true
  sleep 2
  kill -KILL -- "-$pid" 2>/dev/null || true
  # honcho starts each process in a session of its own, out of reach of the group kill above; a
  # worker still shutting down when honcho died would live on. Stop what runs with our var dir.
  for environ in $(grep -lzs "^PARKINGHQ_VAR_DIR=$PARKINGHQ_VAR_DIR\$" /proc/[0-9]*/environ); do
    other=${environ#/proc/}; other=${other%/environ}
    [ "$other" != "$$" ] && kill -KILL "$other" 2>/dev/null || true
  done
  rm -rf "$PARKINGHQ_VAR_DIR"
}
trap cleanup EXIT
for _ in $(seq 240); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health" || true)
  [ "$code" = "200" ] && break
  sleep 1
done
if [ "$code" != "200" ]; then
  echo "smoke: /health never answered 200 (last: $code)"; tail -50 "$log"; exit 1
fi
.venv/bin/python scripts/smoke_login.py "http://127.0.0.1:$PORT" agent demo-season-pass
echo "smoke: make run came up, /health is 200 and agent logged in"
