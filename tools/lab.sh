#!/usr/bin/env bash
# make lab / lab-signed / lab-tpm: start the lab bootstrap server, dry-run
# the agent against it (the plan), then run it for real as a device already
# running the requested image (so the progress reports show), stop the server.
#
#   tools/lab.sh BIN DIR ADDR [plain|signed|tpm]
#     plain   sample onboarding, trusted TLS, IDevID key in a file
#     signed  the same onboarding signed by the lab owner with a nonce
#             voucher, served over TLS the agent does NOT trust
#     tpm     plain, but the IDevID key lives in a swtpm provisioned by
#             tools/tpm-factory.sh (needs swtpm and tpm2-tools)
set -euo pipefail
bin=${1:-bin} dir=${2:-lab-run} addr=${3:-127.0.0.1:8443} mode=${4:-plain}
mkdir -p "$dir"
ready="$dir/ready.env"
rm -f "$ready"

definition=testdata/lab/onboarding.yaml
server_flags=()
case $mode in
plain | tpm) ;;
signed)
  definition=testdata/lab/signed-onboarding.yaml
  server_flags=(--untrusted-tls)
  ;;
*) echo "unknown lab mode $mode" >&2; exit 2 ;;
esac

"$bin/sztp-lab" --dir "$dir" --addr "$addr" --serial-number SN-LAB-0001 \
  --definition "$definition" --ready-file "$ready" "${server_flags[@]}" >"$dir/server.out" 2>"$dir/server.log" &
server=$!
cleanup() {
  kill $server 2>/dev/null || true
  wait $server 2>/dev/null || true
  [ -d "$dir/tpm" ] && tools/tpm-stop.sh "$dir/tpm" >/dev/null 2>&1 || true
}
trap cleanup EXIT

for _ in $(seq 1 100); do [ -s "$ready" ] && break; sleep 0.1; done
if [ ! -s "$ready" ]; then echo "lab server did not start:"; cat "$dir/server.out" "$dir/server.log"; exit 1; fi
# shellcheck disable=SC1090
. "$ready"

identity=(--idevid-cert "$IDEVID_CERT" --idevid-key "$IDEVID_KEY")
if [ "$mode" = tpm ]; then
  echo "== manufacturing a software TPM: IDevID key at 0x81020000, certificate in NV 0x01C90000"
  rm -rf "$dir/tpm"
  tools/tpm-factory.sh --state "$dir/tpm" --ca-cert "$dir/manufacturer-ca.pem" --ca-key "$dir/manufacturer-ca.key" \
    --serial "$SERIAL_NUMBER" >"$dir/tpm.env"
  TPM=$(sed -n 's/^TPM=//p' "$dir/tpm.env")
  identity=(--tpm "$TPM")
  echo "   $TPM (no private key file is given to the agent)"
fi
common=(--bootstrap-url "$URL" --trust-anchor "$TRUST_ANCHOR" --voucher-trust-anchor "$VOUCHER_TRUST_ANCHOR"
  "${identity[@]}" --os-name LabOS
  --image-install-command 'echo install "$SZTP_IMAGE_PATH"'
  --config-apply-command 'echo apply "$SZTP_CONFIG_PATH" "$SZTP_CONFIG_HANDLING"'
  --reboot-command 'echo reboot')

echo "== lab bootstrap server at $URL (device $SERIAL_NUMBER, mode $mode)"
echo "== sztp-agent run --dry-run"
set +e
"$bin/sztp-agent" run --dry-run "${common[@]}" --os-version 1.0 --state-dir "$dir/agent-state"
rc=$?
set -e
if [ $rc -eq 0 ]; then
  echo
  echo "== sztp-agent run --once (as a device already running LabOS 2.0; hooks only print)"
  rm -rf "$dir/agent-state-real"
  set +e
  "$bin/sztp-agent" run --once "${common[@]}" --os-version 2.0 --log-level warn \
    --state-dir "$dir/agent-state-real" --run-dir "$dir/run" --ssh-host-key-dir "$dir/no-ssh-keys"
  rc=$?
  set -e
fi
sleep 0.2
kill $server; wait $server 2>/dev/null || true
echo
echo "== what the lab server printed (its log is in $dir/server.log)"
cat "$dir/server.out"
echo "== sztp-agent exit status: $rc"
exit $rc
