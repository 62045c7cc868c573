#!/usr/bin/env bash
# make lab: start the lab bootstrap server with the sample onboarding, run the
# agent's dry run against it, show what happened, stop the server.
set -euo pipefail
bin=${1:-bin} dir=${2:-lab-run} addr=${3:-127.0.0.1:8443}
mkdir -p "$dir"
ready="$dir/ready.env"
rm -f "$ready"

"$bin/sztp-lab" --dir "$dir" --addr "$addr" --serial-number SN-LAB-0001 \
  --definition testdata/lab/onboarding.yaml --ready-file "$ready" >"$dir/server.out" 2>"$dir/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do [ -s "$ready" ] && break; sleep 0.1; done
if [ ! -s "$ready" ]; then echo "lab server did not start:"; cat "$dir/server.out" "$dir/server.log"; exit 1; fi
# shellcheck disable=SC1090
. "$ready"

echo "== lab bootstrap server at $URL (device $SERIAL_NUMBER)"
echo "== sztp-agent run --dry-run"
set +e
"$bin/sztp-agent" run --dry-run \
  --bootstrap-url "$URL" \
  --trust-anchor "$TRUST_ANCHOR" \
  --idevid-cert "$IDEVID_CERT" --idevid-key "$IDEVID_KEY" \
  --os-name LabOS --os-version 1.0 \
  --state-dir "$dir/agent-state" \
  --image-install-command 'echo install "$SZTP_IMAGE_PATH"' \
  --config-apply-command 'echo apply "$SZTP_CONFIG_PATH" "$SZTP_CONFIG_HANDLING"' \
  --reboot-command 'echo reboot'
rc=$?
set -e
if [ $rc -eq 0 ]; then
  # A real run as a device already running LabOS 2.0 would do it, so the
  # progress reports can be seen; the hooks only print, the state stays in $dir.
  echo
  echo "== sztp-agent run --once (as a device already running LabOS 2.0; hooks only print)"
  set +e
  "$bin/sztp-agent" run --once \
    --bootstrap-url "$URL" --trust-anchor "$TRUST_ANCHOR" \
    --idevid-cert "$IDEVID_CERT" --idevid-key "$IDEVID_KEY" \
    --os-name LabOS --os-version 2.0 --log-level warn \
    --state-dir "$dir/agent-state-real" --ssh-host-key-dir "$dir/no-ssh-keys" \
    --image-install-command 'echo install "$SZTP_IMAGE_PATH"' \
    --config-apply-command 'echo apply "$SZTP_CONFIG_PATH" "$SZTP_CONFIG_HANDLING"' \
    --reboot-command 'echo reboot'
  rc=$?
  set -e
fi
sleep 0.2
echo
echo "== what the lab server printed (its log is in $dir/server.log)"
kill $server; wait $server 2>/dev/null || true
cat "$dir/server.out"
echo "== sztp-agent exit status: $rc"
exit $rc
