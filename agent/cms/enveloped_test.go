package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

// opaqueDecrypter hides the concrete *rsa.PrivateKey the way a TPM-backed
// key would: only crypto.Decrypter is visible.
type opaqueDecrypter struct{ k *rsa.PrivateKey }

func (o opaqueDecrypter) Public() crypto.PublicKey { return o.k.Public() }
func (o opaqueDecrypter) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return o.k.Decrypt(r, msg, opts)
}

func TestDecryptFixtures(t *testing.T) {
	content := fixture(t, "conveyed.json")
	rsaCert, rsaKey := fixtureCert(t, "devrsa.crt"), fixtureKey(t, "devrsa.key").(*rsa.PrivateKey)
	ecCert, ecKey := fixtureCert(t, "devec.crt"), fixtureKey(t, "devec.key").(*ecdsa.PrivateKey)
	ecdhKey, err := ecKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	rsaFiles := []string{"enc-rsa-aes256.cms", "enc-rsa-aes128.cms", "enc-rsa-aes192.cms", "enc-rsa-oaep.cms",
		"enc-rsa-oaep256.cms", "enc-rsa-skid.cms", "enc-rsa-gcm.cms"}
	ecFiles := []string{"enc-ec-aes256.cms", "enc-ec-aes128-sha256kdf.cms", "enc-ec-gcm.cms"}
	type tc struct {
		file string
		cert *x509.Certificate
		key  any
	}
	var cases []tc
	for _, f := range rsaFiles {
		cases = append(cases, tc{f, rsaCert, rsaKey}, tc{f, rsaCert, opaqueDecrypter{rsaKey}})
	}
	for _, f := range ecFiles {
		cases = append(cases, tc{f, ecCert, ecKey}, tc{f, ecCert, ecdhKey})
	}
	for _, c := range cases {
		t.Run(c.file+"/"+typeName(c.key), func(t *testing.T) {
			got, ctype, err := Decrypt(fixture(t, c.file), c.cert, c.key)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !ctype.Equal(OIDData) {
				t.Errorf("content type %s, want id-data (what openssl writes)", ctype)
			}
			if !bytes.Equal(got, content) {
				t.Errorf("plaintext differs from the encrypted input")
			}
		})
	}
}

func typeName(k any) string {
	switch k.(type) {
	case *rsa.PrivateKey:
		return "rsa"
	case opaqueDecrypter:
		return "decrypter"
	case *ecdsa.PrivateKey:
		return "ecdsa"
	case *ecdh.PrivateKey:
		return "ecdh"
	}
	return "other"
}

func TestSignedThenEncrypted(t *testing.T) {
	inner, ctype, err := Decrypt(fixture(t, "signed-then-enc.cms"), fixtureCert(t, "devrsa.crt"), fixtureKey(t, "devrsa.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !ctype.Equal(OIDData) {
		t.Errorf("content type %s", ctype)
	}
	s, err := ParseSigned(inner)
	if err != nil {
		t.Fatalf("inner SignedData: %v", err)
	}
	if err := s.VerifySignature(fixtureCert(t, "owner.crt")); err != nil {
		t.Fatal(err)
	}
	if !s.EContentType.Equal(OIDSZTPConveyedInfoJSON) || !bytes.Equal(s.Content, fixture(t, "conveyed.json")) {
		t.Fatal("inner content mismatch")
	}
}

// encryptedContent returns the ciphertext and (for AuthEnvelopedData) the
// MAC of a fixture, to aim tampering at them.
func encryptedContent(t testing.TB, der []byte) (ct, mac []byte) {
	t.Helper()
	ci, err := ParseContentInfo(der)
	if err != nil {
		t.Fatal(err)
	}
	if ci.ContentType.Equal(OIDAuthEnvelopedData) {
		var a authEnvelopedData
		if _, err := asn1.Unmarshal(ci.Content.Bytes, &a); err != nil {
			t.Fatal(err)
		}
		return a.EncryptedContentInfo.EncryptedContent.Bytes, a.MAC
	}
	var e envelopedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &e); err != nil {
		t.Fatal(err)
	}
	return e.EncryptedContentInfo.EncryptedContent.Bytes, nil
}

func TestDecryptNegative(t *testing.T) {
	rsaCert, rsaKey := fixtureCert(t, "devrsa.crt"), fixtureKey(t, "devrsa.key")
	ecCert, ecKey := fixtureCert(t, "devec.crt"), fixtureKey(t, "devec.key")
	cbc := fixture(t, "enc-rsa-aes256.cms")
	gcm := fixture(t, "enc-rsa-gcm.cms")
	kari := fixture(t, "enc-ec-aes256.cms")
	cbcCT, _ := encryptedContent(t, cbc)
	gcmCT, gcmMAC := encryptedContent(t, gcm)
	kariCT, _ := encryptedContent(t, kari)

	tests := []struct {
		name    string
		der     []byte
		cert    *x509.Certificate
		key     any
		wantErr error
	}{
		// Flipping the last byte of the next-to-last block flips the pad byte.
		{"corrupt CBC padding", flipIn(t, cbc, cbcCT[:len(cbcCT)-16]), rsaCert, rsaKey, ErrDecryption},
		{"corrupt KARI CBC padding", flipIn(t, kari, kariCT[:len(kariCT)-16]), ecCert, ecKey, ErrDecryption},
		{"GCM tag flipped", flipIn(t, gcm, gcmMAC), rsaCert, rsaKey, ErrDecryption},
		{"GCM ciphertext flipped", flipIn(t, gcm, gcmCT), rsaCert, rsaKey, ErrDecryption},
		{"not addressed to this cert", cbc, ecCert, ecKey, ErrNotForRecipient},
		{"EC key for an RSA recipient", cbc, rsaCert, ecKey, ErrKeyType},
		{"RSA key for an EC recipient", kari, ecCert, rsaKey, ErrKeyType},
		{"trailing garbage", append(bytes.Clone(cbc), 0), rsaCert, rsaKey, nil},
		{"signed, not enveloped", fixture(t, "signed-conveyed-43.cms"), rsaCert, rsaKey, nil},
		{"nil key", cbc, rsaCert, nil, nil},
		{"nil cert", cbc, nil, rsaKey, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Decrypt(tc.der, tc.cert, tc.key)
			noPanic(t, err)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %q is not %v", err, tc.wantErr)
			}
			t.Log(err)
		})
	}
}

// TestDecryptWrongKeys is the case the pkcs7 libraries panic on: many
// wrong RSA keys (of the right and of a smaller size) and wrong EC keys,
// each presented with the right certificate. Every one must be a plain
// ErrDecryption with the same message.
func TestDecryptWrongKeys(t *testing.T) {
	rsaCert, ecCert := fixtureCert(t, "devrsa.crt"), fixtureCert(t, "devec.crt")
	n := 40
	if testing.Short() {
		n = 8
	}
	var msgs = map[string]bool{}
	for i := 0; i < n; i++ {
		bits := 1024
		if i%8 == 0 {
			bits = 2048
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"enc-rsa-aes256.cms", "enc-rsa-aes128.cms", "enc-rsa-oaep256.cms", "enc-rsa-gcm.cms"} {
			_, _, err := Decrypt(fixture(t, f), rsaCert, k)
			if !errors.Is(err, ErrDecryption) {
				t.Fatalf("%s with wrong RSA key %d: %v", f, i, err)
			}
			msgs[err.Error()] = true
		}
		ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		for _, f := range []string{"enc-ec-aes256.cms", "enc-ec-gcm.cms"} {
			_, _, err := Decrypt(fixture(t, f), ecCert, ek)
			if !errors.Is(err, ErrDecryption) {
				t.Fatalf("%s with wrong EC key %d: %v", f, i, err)
			}
		}
	}
	// One message per container type: nothing says which step failed.
	if len(msgs) > 2 {
		t.Errorf("wrong-key errors differ: %v", msgs)
	}
}

func TestDecryptTruncated(t *testing.T) {
	rsaCert, rsaKey := fixtureCert(t, "devrsa.crt"), fixtureKey(t, "devrsa.key")
	ecCert, ecKey := fixtureCert(t, "devec.crt"), fixtureKey(t, "devec.key")
	for _, c := range []struct {
		file string
		cert *x509.Certificate
		key  any
	}{{"enc-rsa-aes256.cms", rsaCert, rsaKey}, {"enc-rsa-gcm.cms", rsaCert, rsaKey}, {"enc-ec-aes128-sha256kdf.cms", ecCert, ecKey}} {
		der := fixture(t, c.file)
		for n := 0; n < len(der); n++ {
			_, _, err := Decrypt(der[:n], c.cert, c.key)
			noPanic(t, err)
			if err == nil {
				t.Fatalf("%s truncated to %d: accepted", c.file, n)
			}
		}
	}
}

func TestPKCS7Unpad(t *testing.T) {
	block := func(tail ...byte) []byte { return append(bytes.Repeat([]byte{'x'}, 16-len(tail)), tail...) }
	tests := []struct {
		in   []byte
		want int // resulting length, -1 for error
	}{
		{block(1), 15},
		{block(2, 2), 14},
		{bytes.Repeat([]byte{16}, 16), 0},
		{append(block(1), bytes.Repeat([]byte{16}, 16)...), 16},
		{block(0), -1},
		{block(17), -1},
		{block(0xff), -1},
		{block(1, 2), -1},
		{block(3, 3), -1},
		{nil, -1},
		{[]byte{1}, -1},
	}
	for i, tc := range tests {
		out, err := pkcs7Unpad(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("%d: accepted bad padding", i)
			}
			continue
		}
		if err != nil || len(out) != tc.want {
			t.Errorf("%d: got %d, %v; want %d", i, len(out), err, tc.want)
		}
	}
}

// RFC 3394 §4.1, 4.3 and 4.6 test vectors.
func TestAESKeyUnwrap(t *testing.T) {
	h := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	for _, v := range []struct{ kek, wrapped, key string }{
		{"000102030405060708090A0B0C0D0E0F", "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5", "00112233445566778899AABBCCDDEEFF"},
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7", "00112233445566778899AABBCCDDEEFF"},
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"},
	} {
		got, err := aesKeyUnwrap(h(v.kek), h(v.wrapped))
		if err != nil || !bytes.Equal(got, h(v.key)) {
			t.Errorf("unwrap %s: %x, %v", v.wrapped, got, err)
		}
		bad := h(v.wrapped)
		bad[len(bad)-1] ^= 1
		if _, err := aesKeyUnwrap(h(v.kek), bad); !errors.Is(err, ErrDecryption) {
			t.Errorf("tampered wrap accepted")
		}
	}
}

func FuzzDecrypt(f *testing.F) {
	for _, name := range []string{"enc-rsa-aes256.cms", "enc-rsa-oaep256.cms", "enc-rsa-skid.cms", "enc-rsa-gcm.cms",
		"enc-ec-aes256.cms", "enc-ec-aes128-sha256kdf.cms", "enc-ec-gcm.cms"} {
		f.Add(fixture(f, name))
	}
	rsaCert, rsaKey := fixtureCert(f, "devrsa.crt"), fixtureKey(f, "devrsa.key")
	ecCert, ecKey := fixtureCert(f, "devec.crt"), fixtureKey(f, "devec.key")
	f.Fuzz(func(t *testing.T, der []byte) {
		for _, c := range []struct {
			cert *x509.Certificate
			key  any
		}{{rsaCert, rsaKey}, {ecCert, ecKey}, {rsaCert, ecKey}} {
			_, _, err := Decrypt(der, c.cert, c.key)
			noPanic(t, err)
		}
	})
}

// TestDecryptBitFlips flips each byte of a KARI and a GCM fixture: the
// result is an error or, for bytes that carry no meaning we act on (e.g.
// version numbers), the original plaintext; never garbage, never a panic.
func TestDecryptBitFlips(t *testing.T) {
	content := fixture(t, "conveyed.json")
	ecCert, ecKey := fixtureCert(t, "devec.crt"), fixtureKey(t, "devec.key")
	for _, f := range []string{"enc-ec-aes256.cms", "enc-ec-gcm.cms"} {
		der := fixture(t, f)
		for i := range der {
			mut := bytes.Clone(der)
			mut[i] ^= 0x01
			got, _, err := Decrypt(mut, ecCert, ecKey)
			noPanic(t, err)
			if err == nil && !bytes.Equal(got, content) && f == "enc-ec-gcm.cms" {
				t.Fatalf("%s: flip at %d returned altered plaintext", f, i)
			}
		}
	}
}
