#!/usr/bin/env bash
# scripts/run against a taken port: while something else listens on node 2's HTTP port (7002),
# scripts/run must exit non-zero, name the port and the reason on stderr, and leave none of the
# nodes it started running. Also: scripts/run --help prints its usage and exits 0.
# usage: tests/scripts/run_test.sh WARDEN_BINARY   (CTest passes the built binary; scripts/run
# then neither installs nor builds anything)
# Exit status: 0 passed, 1 failed, 77 skipped (port 7002 is taken by something else already,
# such as a cluster of scripts/run that is running).
set -euo pipefail

binary=$(realpath -- "${1:?usage: run_test.sh WARDEN_BINARY}")
run=$(cd -- "$(dirname -- "$0")/../.." && pwd)/scripts/run
work=$(mktemp -d)
holder=
runner=

cleanup() {
  if [ -n "$runner" ]; then kill -TERM "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true; fi
  if [ -n "$holder" ]; then kill -TERM "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; fi
  rm -rf -- "$work"
}
trap cleanup EXIT

failed() {
  echo "FAILED: $*" >&2
  for f in out err; do [ -f "$work/$f" ] && { echo "--- scripts/run std$f:"; cat "$work/$f"; } >&2; done
  exit 1
}

# --help: usage on stdout, exit 0, nothing started.
help=$(WARDEN_RUN_BINARY="$binary" "$run" --help) || failed "scripts/run --help exited non-zero"
[[ $help == usage:* ]] || failed "scripts/run --help printed: $help"

# Something else holds 127.0.0.1:7002 for the duration of the test (at most 120 s).
python3 -c '
import socket, sys, time
s = socket.socket()
try:
    s.bind(("127.0.0.1", 7002))
except OSError as e:
    print("taken:", e, flush=True)
    sys.exit(0)
s.listen(1)
print("listening", flush=True)
time.sleep(120)
' >"$work/holder" 2>&1 &
holder=$!
for _ in $(seq 50); do [ -s "$work/holder" ] && break; sleep 0.1; done
case "$(cat "$work/holder")" in
  listening*) ;;
  taken*) echo "SKIPPED: 127.0.0.1:7002 is taken already: $(cat "$work/holder")"; exit 77 ;;
  *) failed "the port holder did not start: $(cat "$work/holder")" ;;
esac

# scripts/run must give up by itself (its own bound is 15 s); timeout is only a backstop.
WARDEN_RUN_BINARY="$binary" WARDEN_RUN_DATA="$work/data" timeout -k 5 60 "$run" >"$work/out" 2>"$work/err" &
runner=$!
status=0
wait "$runner" || status=$?
runner=

[ "$status" -ne 0 ] || failed "scripts/run exited 0 although port 7002 was taken"
[ "$status" -ne 124 ] && [ "$status" -ne 137 ] || failed "scripts/run did not give up within 60 s (status $status)"
grep -q "node 2 (http 127.0.0.1:7002" "$work/err" || failed "stderr does not name node 2 and its port"
grep -q "cannot listen on 127.0.0.1:7002 (HTTP): address already in use" "$work/err" ||
  failed "stderr does not carry node 2's reason"
if grep -q "cluster is running" "$work/out"; then failed "scripts/run said the cluster is running"; fi
# Nodes 1 and 3 had started: scripts/run must have stopped them.
if pgrep -f -- "--data-dir $work/data/" >/dev/null; then failed "nodes are still running: $(pgrep -af -- "--data-dir $work/data/")"; fi
echo "passed: scripts/run exited $status and said:"
cat "$work/err"
