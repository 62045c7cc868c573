#!/usr/bin/env bash
# tpm-factory.sh — provision a software TPM (swtpm) the way a device
# manufacturer provisions an IDevID: create the key inside the TPM, persist it,
# certify its public key with the manufacturer CA and store the certificate in
# TPM NV memory. The agent's tpm package and its tests consume the result.
#
# Usage:
#   tools/tpm-factory.sh --state DIR --ca-cert CA.pem --ca-key CA.key --serial SN
#                        [--cn NAME] [--key ecc256|ecc384|rsa2048 | --rsa]
#                        [--port N] [--key-handle 0x81020000] [--nv-index 0x01C90000]
#                        [--ca-in-nv] [--force]
#
#   --state DIR   directory for swtpm state, logs, pid file and the issued
#                 certificate; created if missing. Must not hold a provisioned
#                 TPM already unless --force (which wipes it).
#   --port N      swtpm data port on 127.0.0.1; N+1 is the control port (the
#                 layout tpm2-tools' swtpm TCTI assumes). Default: a free pair.
#   --key         ecc256 (default; ECDSA-SHA256, sign), ecc384 (ECDSA-SHA384,
#                 sign) or rsa2048 (NULL scheme so the caller picks PKCS#1 v1.5
#                 or PSS per signature; sign|decrypt). --rsa = --key rsa2048.
#   --ca-in-nv    store leaf DER followed by the CA DER in NV (a chain).
#
# Output: KEY=value lines on stdout (diagnostics go to stderr), e.g.
#   TPM=swtpm:127.0.0.1:2321        (spec for tpm.Open)
#   TPM_PORT=2321  TPM_CTRL_PORT=2322  TCTI=swtpm:host=127.0.0.1,port=2321
#   SWTPM_PID=1234  PID_FILE=DIR/swtpm.pid  LOG_FILE=DIR/swtpm.log  STATE_DIR=DIR
#   KEY_TYPE=ecc256  KEY_HANDLE=0x81020000  CERT_INDEX=0x01C90000  NV_SIZE=612
#   CERT_DER=DIR/idevid.der  CERT_PEM=DIR/idevid.pem  KEY_PUB_PEM=DIR/idevid-pub.pem
#   SERIAL=SN  SUBJECT=/CN=.../serialNumber=SN  SECONDS=0.9
# Stop swtpm with tools/tpm-stop.sh DIR.
#
# Needs: swtpm (Debian: swtpm, swtpm-tools), tpm2-tools, openssl >= 3.0.
set -euo pipefail

die() { echo "tpm-factory: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

STATE= CA_CERT= CA_KEY= SERIAL= CN= KEY=ecc256 PORT= KEY_HANDLE=0x81020000 NV_INDEX=0x01C90000 CA_IN_NV=0 FORCE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--state) STATE=$2; shift 2 ;;
	--ca-cert) CA_CERT=$2; shift 2 ;;
	--ca-key) CA_KEY=$2; shift 2 ;;
	--serial) SERIAL=$2; shift 2 ;;
	--cn) CN=$2; shift 2 ;;
	--key) KEY=$2; shift 2 ;;
	--rsa) KEY=rsa2048; shift ;;
	--port) PORT=$2; shift 2 ;;
	--key-handle) KEY_HANDLE=$2; shift 2 ;;
	--nv-index) NV_INDEX=$2; shift 2 ;;
	--ca-in-nv) CA_IN_NV=1; shift ;;
	--force) FORCE=1; shift ;;
	-h | --help) usage ;;
	*) echo "tpm-factory: unknown argument $1" >&2; usage ;;
	esac
done
[ -n "$STATE" ] && [ -n "$CA_CERT" ] && [ -n "$CA_KEY" ] && [ -n "$SERIAL" ] || usage
[ -r "$CA_CERT" ] || die "CA certificate $CA_CERT not readable"
[ -r "$CA_KEY" ] || die "CA key $CA_KEY not readable"
case "$SERIAL" in */* | *=* | *,* | *+*) die "serial number must not contain / = , +" ;; esac
[ -n "$CN" ] || CN="IDevID $SERIAL"
abspath() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
CA_CERT=$(abspath "$CA_CERT") CA_KEY=$(abspath "$CA_KEY")
for bin in swtpm tpm2_createprimary tpm2_flushcontext openssl; do
	command -v "$bin" >/dev/null || die "$bin not found (apt-get install -y swtpm swtpm-tools tpm2-tools openssl)"
done

case "$KEY" in
# ECC IDevIDs per the TCG DevID templates: fixed ECDSA scheme, sign only.
ecc256) ALG=ecc256:ecdsa-sha256 ATTRS="sign" KU="critical,digitalSignature" ;;
ecc384) ALG=ecc384:ecdsa-sha384 ATTRS="sign" KU="critical,digitalSignature" ;;
# RSA: NULL scheme (":null" for the symmetric part too, otherwise tpm2_create
# asks for a symmetric algorithm and the TPM answers 0x2D6), so TLS can pick
# PSS (TLS 1.3) or PKCS#1 v1.5 (TLS 1.2) per handshake; decrypt so the device
# can open CMS EnvelopedData addressed to its IDevID certificate.
rsa2048) ALG=rsa2048:null:null ATTRS="sign|decrypt" KU="critical,digitalSignature,keyEncipherment" ;;
*) die "unknown --key $KEY (ecc256, ecc384, rsa2048)" ;;
esac

T0=$(date +%s.%N)
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
TPMDIR=$STATE/tpm WORK=$STATE/factory
PIDFILE=$STATE/swtpm.pid LOG=$STATE/swtpm.log

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
	die "swtpm already running for $STATE (pid $(cat "$PIDFILE")); stop it with tools/tpm-stop.sh $STATE"
fi
if [ -n "$(ls -A "$TPMDIR" 2>/dev/null)" ]; then
	[ "$FORCE" = 1 ] || die "$TPMDIR already holds TPM state; use --force to wipe it"
	rm -rf "$TPMDIR"
fi
rm -rf "$WORK"
mkdir -p "$TPMDIR" "$WORK"
: >"$LOG"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_swtpm PORT: swtpm already powered on and TPM2_Startup done
# (not-need-init,startup-clear), because the agent's transport speaks the raw
# TPM protocol and never sends the control-channel power-on.
start_swtpm() {
	rm -f "$PIDFILE"
	swtpm socket --tpm2 --tpmstate "dir=$TPMDIR" \
		--server "type=tcp,port=$1,bindaddr=127.0.0.1" \
		--ctrl "type=tcp,port=$(($1 + 1)),bindaddr=127.0.0.1" \
		--flags not-need-init,startup-clear \
		--pid "file=$PIDFILE" --log "file=$LOG,level=1" --daemon 2>>"$LOG"
}

if [ -n "$PORT" ]; then
	start_swtpm "$PORT" || die "swtpm failed to start on port $PORT (see $LOG)"
else
	# A free pair from the ephemeral-ish range; retried because another
	# process can take the port between the probe and swtpm's bind.
	started=0
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		PORT=$((20000 + (RANDOM % 10000) * 2))
		if port_busy "$PORT" || port_busy $((PORT + 1)); then continue; fi
		if start_swtpm "$PORT"; then started=1; break; fi
	done
	[ "$started" = 1 ] || die "could not start swtpm on a free port (see $LOG)"
fi

# Wait for the pid file and the listening socket (swtpm daemonises first).
for _ in $(seq 1 100); do
	[ -s "$PIDFILE" ] && port_busy "$PORT" && break
	sleep 0.05
done
[ -s "$PIDFILE" ] && port_busy "$PORT" || die "swtpm did not come up on 127.0.0.1:$PORT (see $LOG)"
PID=$(cat "$PIDFILE")

# From here on, a failure must not leave a half-provisioned swtpm running.
trap 'rc=$?; if [ $rc -ne 0 ]; then kill "$PID" 2>/dev/null || true; echo "tpm-factory: failed (rc=$rc); swtpm stopped, log in $LOG" >&2; fi' EXIT

export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$PORT"
# swtpm has no resource manager: every tool leaves its transient objects and
# sessions behind, and the third tool would hit "out of memory for object
# contexts" (0x902). Flush after each step, as a factory station would.
fl() { tpm2_flushcontext -t >/dev/null && tpm2_flushcontext -s >/dev/null && tpm2_flushcontext -l >/dev/null; }
# run: keep every tool's output in factory/tools.log; on failure show this step's.
run() {
	local out
	if ! out=$("$@" 2>&1); then
		printf '%s\n' "$out" >&2
		die "step failed: $*"
	fi
	printf '+ %s\n%s\n' "$*" "$out" >>"$WORK/tools.log"
}

cd "$WORK"
# The IDevID lives under the endorsement hierarchy, so a TPM2_Clear by a
# later owner does not destroy the device identity.
run tpm2_createprimary -C e -g sha256 -G ecc256:aes128cfb -c primary.ctx
fl
run tpm2_create -C primary.ctx -G "$ALG" -g sha256 \
	-a "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|$ATTRS" -u idevid.pub -r idevid.priv
fl
run tpm2_load -C primary.ctx -u idevid.pub -r idevid.priv -c idevid.ctx
fl
run tpm2_evictcontrol -C o -c idevid.ctx "$KEY_HANDLE"
fl
run tpm2_readpublic -c "$KEY_HANDLE" -f pem -o "$STATE/idevid-pub.pem"
fl

# Certify the TPM-resident public key directly (no CSR: the private key
# never leaves the TPM and the factory trusts its own station).
cat >idevid.ext <<EOF
[v3]
basicConstraints = critical,CA:FALSE
keyUsage = $KU
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
SUBJECT="/CN=$CN/serialNumber=$SERIAL"
run openssl x509 -new -force_pubkey "$STATE/idevid-pub.pem" -subj "$SUBJECT" \
	-CA "$CA_CERT" -CAkey "$CA_KEY" -set_serial "0x$(openssl rand -hex 12)" -days 3650 -sha256 \
	-extfile idevid.ext -extensions v3 -outform DER -out "$STATE/idevid.der"
run openssl x509 -inform DER -in "$STATE/idevid.der" -out "$STATE/idevid.pem"
run openssl verify -CAfile "$CA_CERT" "$STATE/idevid.pem"

cp "$STATE/idevid.der" nv.bin
if [ "$CA_IN_NV" = 1 ]; then
	openssl x509 -in "$CA_CERT" -outform DER >>nv.bin
fi
NV_SIZE=$(stat -c %s nv.bin)
# Owner-readable and readable with the index's own empty auth, so the agent
# needs no secret; writable only by the owner.
run tpm2_nvdefine "$NV_INDEX" -C o -s "$NV_SIZE" -a "ownerwrite|ownerread|authread|no_da"
fl
run tpm2_nvwrite "$NV_INDEX" -C o -i nv.bin
fl
run tpm2_nvread "$NV_INDEX" -C o -s "$NV_SIZE" -o readback.bin
fl
cmp -s nv.bin readback.bin || die "NV readback differs from the written certificate"

T1=$(date +%s.%N)
trap - EXIT
cat <<EOF
TPM=swtpm:127.0.0.1:$PORT
TPM_PORT=$PORT
TPM_CTRL_PORT=$((PORT + 1))
TCTI=$TPM2TOOLS_TCTI
SWTPM_PID=$PID
PID_FILE=$PIDFILE
LOG_FILE=$LOG
STATE_DIR=$STATE
KEY_TYPE=$KEY
KEY_HANDLE=$KEY_HANDLE
CERT_INDEX=$NV_INDEX
NV_SIZE=$NV_SIZE
CERT_DER=$STATE/idevid.der
CERT_PEM=$STATE/idevid.pem
KEY_PUB_PEM=$STATE/idevid-pub.pem
SERIAL=$SERIAL
SUBJECT=$SUBJECT
SECONDS=$(awk "BEGIN{printf \"%.2f\", $T1 - $T0}")
EOF
