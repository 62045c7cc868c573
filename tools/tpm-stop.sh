#!/usr/bin/env bash
# tpm-stop.sh — stop the swtpm started by tools/tpm-factory.sh.
#
# Usage: tools/tpm-stop.sh STATE_DIR   (or: tools/tpm-stop.sh --pid-file FILE)
#
# Only the process named in the pid file is signalled: other swtpm instances
# (other tests, other developers) keep running. Idempotent: a missing pid file
# or an already dead process is success. The TPM state stays in STATE_DIR.
set -euo pipefail

case "${1:-}" in
--pid-file) PIDFILE=${2:?usage: tpm-stop.sh --pid-file FILE} ;;
"" | -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
*) PIDFILE=$1/swtpm.pid ;;
esac

[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
case "$PID" in '' | *[!0-9]*) echo "tpm-stop: $PIDFILE does not hold a pid" >&2; exit 1 ;; esac

# Guard against a recycled pid: only signal it if it is still an swtpm.
if [ "$(cat "/proc/$PID/comm" 2>/dev/null)" != swtpm ]; then
	rm -f "$PIDFILE"
	exit 0
fi
kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 1 50); do
	kill -0 "$PID" 2>/dev/null || { rm -f "$PIDFILE"; exit 0; }
	sleep 0.05
done
kill -KILL "$PID" 2>/dev/null || true
rm -f "$PIDFILE"
