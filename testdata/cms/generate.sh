#!/usr/bin/env bash
# Regenerates the CMS fixtures that agent/cms tests read.
#
# Every run makes fresh keys, so the bytes change, but the file names and the
# relations between files (which cert signed what, which key opens what) stay
# the same; the tests rely only on those relations. Run from any directory:
# everything is written next to this script, or into the directory given as
# the only argument (CI regenerates into a scratch directory and runs the
# tests against it too). Needs the openssl CLI (3.0+).
#
# Keys here are test keys and are checked in on purpose: they protect nothing.
set -euo pipefail

out=${1:-$(dirname "${BASH_SOURCE[0]}")}
mkdir -p "$out"
cd "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# OIDs of RFC 8572 / RFC 8366 content types.
OID_CONVEYED_JSON=1.2.840.113549.1.9.16.1.43
OID_VOUCHER=1.2.840.113549.1.9.16.1.40

ec_key()  { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# issue NAME SUBJECT KEYUSAGE: a leaf cert for NAME.key signed by the CA, with
# SKI/AKI (the -keyid signer and SKI recipient matching need the SKI).
issue() {
	local name=$1 subj=$2 ku=$3
	openssl req -new -key "$name.key" -subj "$subj" -out "$tmp/$name.csr"
	printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,$ku" \
		"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$tmp/$name.ext"
	openssl x509 -req -in "$tmp/$name.csr" -CA ca.crt -CAkey ca.key \
		-set_serial "0x$(openssl rand -hex 8)" -days 7300 -sha256 \
		-extfile "$tmp/$name.ext" -out "$name.crt" 2>/dev/null
}

# --- PKI -------------------------------------------------------------------
ec_key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=SZTP Test CA" -days 7300 -sha256 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "subjectKeyIdentifier=hash" -out ca.crt

ec_key owner.key;          issue owner "/CN=SZTP Test Owner" digitalSignature
rsa_key rsasigner.key;     issue rsasigner "/CN=SZTP Test RSA Signer" digitalSignature
rsa_key devrsa.key;        issue devrsa "/CN=SZTP Test RSA Device/serialNumber=SN-RSA-0001" "digitalSignature,keyEncipherment"
ec_key devec.key;          issue devec "/CN=SZTP Test EC Device/serialNumber=SN-EC-0001" "digitalSignature,keyAgreement"

# --- payloads --------------------------------------------------------------
cat >conveyed.json <<'JSON'
{"ietf-sztp-conveyed-info:onboarding-information":{"boot-image":{"os-name":"TestOS","os-version":"1.0"},"configuration-handling":"merge","configuration":"PGNvbmZpZy8+"}}
JSON
cat >voucher.json <<'JSON'
{"ietf-voucher:voucher":{"created-on":"2026-01-01T00:00:00Z","assertion":"verified","serial-number":"SN-EC-0001","pinned-domain-cert":"MAo="}}
JSON

# --- SignedData ------------------------------------------------------------
sign() { # sign OUT IN SIGNER [extra openssl cms args...]
	local out=$1 in=$2 signer=$3
	shift 3
	openssl cms -sign -binary -nodetach -in "$in" -signer "$signer.crt" -inkey "$signer.key" \
		-outform DER -out "$out" "$@"
}
sign signed-conveyed-43.cms conveyed.json owner -md sha256 -econtent_type $OID_CONVEYED_JSON
sign signed-conveyed-data.cms conveyed.json owner -md sha256
sign signed-conveyed-sha384.cms conveyed.json owner -md sha384 -econtent_type $OID_CONVEYED_JSON
sign signed-rsa.cms conveyed.json rsasigner -md sha256 -econtent_type $OID_CONVEYED_JSON
sign signed-rsa-sha512.cms conveyed.json rsasigner -md sha512 -econtent_type $OID_CONVEYED_JSON
sign signed-rsapss.cms conveyed.json rsasigner -md sha256 -econtent_type $OID_CONVEYED_JSON \
	-keyopt rsa_padding_mode:pss
sign signed-skid.cms conveyed.json owner -md sha256 -econtent_type $OID_CONVEYED_JSON -keyid
# (No Ed25519 fixture: OpenSSL 3.0's CMS cannot sign with Ed25519, "invalid
# digest"; the Go tests build that case themselves.)
sign signed-noattr.cms conveyed.json owner -md sha256 -noattr
sign voucher.cms voucher.json owner -md sha256 -econtent_type $OID_VOUCHER -certfile ca.crt
# Negative fixtures: a SHA-1 digest, and a detached signature (no eContent).
sign signed-sha1.cms conveyed.json owner -md sha1 -econtent_type $OID_CONVEYED_JSON
openssl cms -sign -binary -in conveyed.json -signer owner.crt -inkey owner.key -md sha256 \
	-econtent_type $OID_CONVEYED_JSON -outform DER -out signed-detached.cms
# Owner-certificate artifact: a degenerate (signer-less) SignedData.
openssl crl2pkcs7 -nocrl -certfile owner.crt -certfile ca.crt -outform DER -out owner-certs.p7

# --- EnvelopedData / AuthEnvelopedData -------------------------------------
encrypt() { # encrypt OUT IN RECIPIENT [extra openssl cms args...]
	local out=$1 in=$2 recip=$3
	shift 3
	openssl cms -encrypt -binary -in "$in" -recip "$recip.crt" -outform DER -out "$out" "$@"
}
encrypt enc-rsa-aes256.cms conveyed.json devrsa -aes-256-cbc
encrypt enc-rsa-aes128.cms conveyed.json devrsa -aes-128-cbc
encrypt enc-rsa-aes192.cms conveyed.json devrsa -aes-192-cbc
encrypt enc-rsa-oaep.cms conveyed.json devrsa -aes-256-cbc -keyopt rsa_padding_mode:oaep
encrypt enc-rsa-oaep256.cms conveyed.json devrsa -aes-256-cbc -keyopt rsa_padding_mode:oaep \
	-keyopt rsa_oaep_md:sha256
encrypt enc-rsa-skid.cms conveyed.json devrsa -aes-256-cbc -keyid
encrypt enc-ec-aes256.cms conveyed.json devec -aes-256-cbc
encrypt enc-ec-aes128-sha256kdf.cms conveyed.json devec -aes-128-cbc -keyopt ecdh_kdf_md:sha256
encrypt enc-rsa-gcm.cms conveyed.json devrsa -aes-256-gcm
encrypt enc-ec-gcm.cms conveyed.json devec -aes-128-gcm
# Sign-then-encrypt (RFC 8572 §3.4). openssl leaves the inner type id-data.
encrypt signed-then-enc.cms signed-conveyed-43.cms devrsa -aes-256-cbc

# Sanity: openssl itself must accept what it made.
for f in signed-conveyed-43 signed-conveyed-data signed-rsa signed-rsapss signed-skid voucher; do
	openssl cms -verify -binary -inform DER -in "$f.cms" -CAfile ca.crt -out /dev/null 2>/dev/null
done
openssl cms -decrypt -binary -inform DER -in enc-ec-aes256.cms -recip devec.crt -inkey devec.key |
	cmp -s - conveyed.json
