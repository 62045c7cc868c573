#!/usr/bin/env bash
# Regenerates the RFC 8572 signed-data fixtures that agent/ownership tests
# read: a MASA, an owner PKI, a device manufacturer and its IDevIDs, and the
# three artifacts (ownership voucher, owner certificate, conveyed
# information) in good, encrypted and deliberately broken shapes.
#
# Every run makes fresh keys and fresh dates, so the bytes change, but the
# file names and the relations between files stay the same; the tests rely
# only on those relations. Output goes next to this script, or into the
# directory given as the only argument (CI regenerates into a scratch
# directory and points SZTP_OWNERSHIP_FIXTURES at it). Needs the openssl CLI
# (3.0+) and bash; nothing else.
#
# Keys here are test keys and are checked in on purpose: they protect nothing.
set -euo pipefail

out=${1:-$(dirname "${BASH_SOURCE[0]}")}
mkdir -p "$out"
cd "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

OID_VOUCHER=1.2.840.113549.1.9.16.1.40
OID_CONVEYED_JSON=1.2.840.113549.1.9.16.1.43
SERIAL=SN-OWN-0001

# EC keys everywhere except the RSA IDevID: P-256 generation is instant, and
# the brief (and the 3 s budget) needs just one RSA-2048 key.
ec_key()  { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# root NAME SUBJECT: a self-signed CA.
root() {
	ec_key "$1.key"
	openssl req -x509 -new -key "$1.key" -subj "$2" -days 7300 -sha256 \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" -out "$1.crt"
}

# issue NAME SUBJECT ISSUER EXTENSIONS...: a certificate for NAME.key signed
# by ISSUER, with SKI/AKI (the RFC 8366 idevid-issuer is the AKI key-id).
# Serial numbers are random so CRLs revoke exactly the intended cert.
issue() {
	local name=$1 subj=$2 issuer=$3
	shift 3
	openssl req -new -key "$name.key" -subj "$subj" -out "$tmp/$name.csr"
	printf '%s\n' "$@" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$tmp/$name.ext"
	openssl x509 -req -in "$tmp/$name.csr" -CA "$issuer.crt" -CAkey "$issuer.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days 7300 -sha256 \
		-extfile "$tmp/$name.ext" -out "$name.crt" 2>/dev/null
}
LEAF_SIG=("basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature")
SUB_CA=("basicConstraints=critical,CA:TRUE,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign")

# --- PKI -------------------------------------------------------------------
# MASA: root (the device's voucher trust anchor) and the voucher signer.
root masa-ca "/O=Test MASA/CN=Test MASA Root CA"
ec_key masa.key;  issue masa "/O=Test MASA/CN=Test MASA Voucher Signer" masa-ca "${LEAF_SIG[@]}"
# A second MASA the device does not trust.
root masa2-ca "/O=Rogue MASA/CN=Rogue MASA Root CA"
ec_key masa2.key; issue masa2 "/O=Rogue MASA/CN=Rogue MASA Voucher Signer" masa2-ca "${LEAF_SIG[@]}"

# Owner: root CA (the pinned-domain-cert), an owner cert directly under it,
# an intermediate CA and an owner cert under that.
root owner-ca "/O=Test Owner/CN=Test Owner Root CA"
ec_key owner.key;     issue owner "/O=Test Owner/CN=Test Owner" owner-ca "${LEAF_SIG[@]}"
ec_key owner-int.key; issue owner-int "/O=Test Owner/CN=Test Owner Issuing CA" owner-ca "${SUB_CA[@]}"
ec_key owner-via-int.key
issue owner-via-int "/O=Test Owner/CN=Test Owner via Intermediate" owner-int "${LEAF_SIG[@]}"
# Negatives: an owner cert from a CA that is not pinned; an owner cert whose
# key usage forbids signatures; a cert of the owner's own PKI that is not
# the owner certificate (it signs conveyed info but is not in the bag).
root other-ca "/O=Other/CN=Other Root CA"
ec_key owner-other.key; issue owner-other "/O=Test Owner/CN=Test Owner" other-ca "${LEAF_SIG[@]}"
ec_key owner-ku.key
issue owner-ku "/O=Test Owner/CN=Test Owner CertSign Only" owner-ca \
	"basicConstraints=critical,CA:FALSE" "keyUsage=critical,keyCertSign"
ec_key rogue.key;     issue rogue "/O=Test Owner/CN=Not The Owner" owner-ca "${LEAF_SIG[@]}"

# Device manufacturer and the IDevIDs; serialNumber is the last RDN (what
# sztpd reads), 802.1AR-style key usages.
root dev-ca "/O=Test Manufacturer/CN=Test IDevID CA"
rsa_key device.key
issue device "/O=Test Manufacturer/CN=Test Device/serialNumber=$SERIAL" dev-ca \
	"basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment"
ec_key device-ec.key
issue device-ec "/O=Test Manufacturer/CN=Test Device EC/serialNumber=$SERIAL" dev-ca \
	"basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyAgreement"
cp masa-ca.crt voucher-trust-anchor.pem

# --- CRLs of the owner CA (need `openssl ca` and a scratch database) -------
cadir=$tmp/ca
mkdir -p "$cadir"
: >"$cadir/index.txt"
echo 01 >"$cadir/crlnumber"
cat >"$cadir/ca.cnf" <<EOF
[ca]
default_ca = owner
[owner]
database = $cadir/index.txt
crlnumber = $cadir/crlnumber
certificate = $PWD/owner-ca.crt
private_key = $PWD/owner-ca.key
default_md = sha256
default_crl_days = 3650
EOF
openssl ca -batch -config "$cadir/ca.cnf" -gencrl -out "$tmp/fresh.crl" 2>/dev/null
openssl ca -batch -config "$cadir/ca.cnf" -revoke owner.crt 2>/dev/null
openssl ca -batch -config "$cadir/ca.cnf" -gencrl -out "$tmp/revoked.crl" 2>/dev/null
cp "$tmp/fresh.crl" owner-ca-fresh.crl
cp "$tmp/revoked.crl" owner-ca-revokes-owner.crl

# --- voucher payloads ----------------------------------------------------------
b64der() { openssl x509 -in "$1" -outform DER | openssl base64 -A; }
PINNED=$(b64der owner-ca.crt)
OTHER_PINNED=$(b64der other-ca.crt)
# idevid-issuer: the keyIdentifier bytes of the IDevID's AKI (RFC 8366), and
# the whole AKI extnValue (RFC 8366bis: SEQUENCE { [0] keyIdentifier }).
akid_hex=$(openssl x509 -in device.crt -noout -ext authorityKeyIdentifier |
	sed -n '2p' | sed 's/keyid://; s/[: ]//g')
hex2bin() { local h=$1 i; for ((i = 0; i < ${#h}; i += 2)); do printf "\\x${h:i:2}"; done; }
IDEVID_ISSUER=$(hex2bin "$akid_hex" | openssl base64 -A)
len=$(printf '%02x' $((${#akid_hex} / 2)))
len2=$(printf '%02x' $((${#akid_hex} / 2 + 2)))
IDEVID_ISSUER_AKI=$(hex2bin "30${len2}80${len}${akid_hex}" | openssl base64 -A)
OTHER_ISSUER=$(openssl rand -base64 20)

PAST=$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)
FUTURE=2099-12-31T23:59:59Z
LONG_AGO=2001-01-01T00:00:00Z
# voucher FILE KEY=VALUE...: the good voucher with leaves overridden; an
# empty VALUE drops the leaf, a VALUE starting with '=' is raw JSON.
voucher() {
	local file=$1
	shift
	local -A leaf=(
		[created-on]=$PAST [expires-on]=$FUTURE [assertion]=verified
		[serial-number]=$SERIAL [idevid-issuer]=$IDEVID_ISSUER [pinned-domain-cert]=$PINNED
	)
	local kv
	for kv in "$@"; do leaf[${kv%%=*}]=${kv#*=}; done
	local body="" k
	for k in created-on expires-on assertion serial-number idevid-issuer pinned-domain-cert \
		domain-cert-revocation-checks nonce; do
		[[ -n ${leaf[$k]:-} ]] || continue
		if [[ ${leaf[$k]} == =* ]]; then
			body+="${body:+,}\"$k\":${leaf[$k]#=}"
		else
			body+="${body:+,}\"$k\":\"${leaf[$k]}\""
		fi
	done
	printf '{"ietf-voucher:voucher":{%s}}\n' "$body" >"$file"
}
voucher voucher.json
voucher voucher-aki.json "idevid-issuer=$IDEVID_ISSUER_AKI"
voucher voucher-serial.json serial-number=SN-OTHER-9999
voucher voucher-expired.json "created-on=$LONG_AGO" expires-on=2002-01-01T00:00:00Z
voucher voucher-future.json "created-on=$FUTURE" expires-on=
voucher voucher-logged.json assertion=logged
voucher voucher-idevid.json "idevid-issuer=$OTHER_ISSUER"
voucher voucher-pinned-garbage.json "pinned-domain-cert=$(printf 'not a certificate' | openssl base64 -A)"
voucher voucher-pinned-other.json "pinned-domain-cert=$OTHER_PINNED"
voucher voucher-revcheck.json domain-cert-revocation-checks==true
voucher voucher-revcheck-false.json domain-cert-revocation-checks==false
printf 'this is not JSON\n' >voucher-notjson.json

# --- SignedData ------------------------------------------------------------
sign() { # sign OUT IN SIGNER [extra openssl cms args...]
	local out=$1 in=$2 signer=$3
	shift 3
	openssl cms -sign -binary -nodetach -md sha256 -in "$in" -signer "$signer.crt" \
		-inkey "$signer.key" -outform DER -out "$out" "$@"
}
vsign() { sign "$1" "$2" masa -econtent_type $OID_VOUCHER -certfile masa-ca.crt; }
vsign voucher.cms voucher.json
sign voucher-data.cms voucher.json masa -certfile masa-ca.crt
for v in aki serial expired future logged idevid pinned-garbage pinned-other revcheck revcheck-false notjson; do
	vsign "voucher-$v.cms" "voucher-$v.json"
done
sign voucher-masa2.cms voucher.json masa2 -econtent_type $OID_VOUCHER -certfile masa2-ca.crt
sign voucher-43.cms voucher.json masa -econtent_type $OID_CONVEYED_JSON -certfile masa-ca.crt

cat >conveyed.json <<'JSON'
{"ietf-sztp-conveyed-info:onboarding-information":{"boot-image":{"os-name":"TestOS","os-version":"2.1","download-uri":["https://images.example.net/testos-2.1.img"],"image-verification":[{"hash-algorithm":"ietf-sztp-conveyed-info:sha-256","hash-value":"ba:ec:cf:a5:67:82:3d:a5:c0:a3:16:a6:b5:a2:8e:6f:9a:b7:b4:d9:6b:8c:e5:bc:0a:ad:7f:f4:31:67:51:b6"}]},"configuration-handling":"merge","configuration":"PGNvbmZpZy8+"}}
JSON
cat >redirect.json <<'JSON'
{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[{"address":"sztp.example.net","port":8443}]}}
JSON
csign() { local out=$1 in=$2 signer=$3; shift 3; sign "$out" "$in" "$signer" -econtent_type $OID_CONVEYED_JSON "$@"; }
csign conveyed.cms conveyed.json owner
sign conveyed-data.cms conveyed.json owner
csign redirect.cms redirect.json owner
csign conveyed-via-int.cms conveyed.json owner-via-int -certfile owner-int.crt
csign conveyed-other.cms conveyed.json owner-other
csign conveyed-ku.cms conveyed.json owner-ku
csign conveyed-rogue.cms conveyed.json rogue
sign conveyed-40.cms conveyed.json owner -econtent_type $OID_VOUCHER

# --- owner-certificate bags (degenerate SignedData) -------------------------
bag() { local out=$1; shift; openssl crl2pkcs7 "$@" -outform DER -out "$out"; }
bag owner-certificate.cms -nocrl -certfile owner.crt
bag owner-certificate-int.cms -nocrl -certfile owner-via-int.crt -certfile owner-int.crt
bag owner-certificate-with-root.cms -nocrl -certfile owner.crt -certfile owner-ca.crt
bag owner-certificate-crl.cms -in owner-ca-fresh.crl -certfile owner.crt
bag owner-certificate-revoked.cms -in owner-ca-revokes-owner.crl -certfile owner.crt
bag owner-certificate-other.cms -nocrl -certfile owner-other.crt
bag owner-certificate-ku.cms -nocrl -certfile owner-ku.crt
bag owner-certificate-empty.cms -nocrl </dev/null

# --- EnvelopedData to the device -------------------------------------------
# Sign-then-encrypt (RFC 8572 §3.4): openssl encrypts the whole DER
# ContentInfo file under id-data, which the agent accepts.
encrypt() { # encrypt OUT IN RECIPIENT
	openssl cms -encrypt -binary -aes-256-cbc -in "$2" -recip "$3.crt" -outform DER -out "$1"
}
for a in voucher owner-certificate conveyed; do
	encrypt "enc-$a.cms" "$a.cms" device
	encrypt "enc-ec-$a.cms" "$a.cms" device-ec
done

# --- sanity: openssl itself accepts what it made -----------------------------
cat masa-ca.crt owner-ca.crt >"$tmp/cas.pem"
overify() { openssl cms -verify -binary -inform DER -in "$1" -CAfile "$2" -purpose any "${@:3}" -out /dev/null 2>/dev/null; }
for f in voucher voucher-data voucher-aki voucher-revcheck; do overify "$f.cms" masa-ca.crt; done
for f in conveyed conveyed-data redirect; do overify "$f.cms" owner-ca.crt -certfile owner.crt; done
overify conveyed-via-int.cms owner-ca.crt
if overify voucher-masa2.cms masa-ca.crt; then echo "voucher-masa2.cms verified against the MASA" >&2; exit 1; fi
if overify conveyed-other.cms owner-ca.crt; then echo "conveyed-other.cms verified against the owner CA" >&2; exit 1; fi
openssl verify -CAfile owner-ca.crt -crl_check -CRLfile owner-ca-fresh.crl owner.crt >/dev/null
if openssl verify -CAfile owner-ca.crt -crl_check -CRLfile owner-ca-revokes-owner.crl owner.crt >/dev/null 2>&1; then
	echo "owner.crt not revoked by owner-ca-revokes-owner.crl" >&2
	exit 1
fi
openssl cms -decrypt -binary -inform DER -in enc-conveyed.cms -recip device.crt -inkey device.key | cmp -s - conveyed.cms
openssl cms -decrypt -binary -inform DER -in enc-ec-voucher.cms -recip device-ec.crt -inkey device-ec.key | cmp -s - voucher.cms
