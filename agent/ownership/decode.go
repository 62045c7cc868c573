package ownership

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/sztp-agent/sztp-agent/agent/cms"
	"github.com/sztp-agent/sztp-agent/agent/conveyed"
)

// Decoded is conveyed information opened, checked and parsed.
type Decoded struct {
	Info *conveyed.Information
	// Signed: the data passed every RFC 8572 §5.4 check.
	Signed      bool
	ContentType asn1.ObjectIdentifier
	Content     []byte
	XML         bool
	// Steps describe each check or transformation that succeeded, in order.
	Steps []string
}

// Decode is what a device does with one source's artifacts before deciding
// whether to act on them: signed data (a voucher or an owner certificate
// came along) goes through Verify; unsigned conveyed information is
// decrypted when it is encrypted to the device (RFC 8572 §3.1); then the
// JSON or XML is parsed. Whether unsigned data may be used is the caller's
// trust decision, not Decode's.
func Decode(p Policy, a Artifacts) (*Decoded, error) {
	d := &Decoded{}
	if a.OwnershipVoucher != nil || a.OwnerCertificate != nil {
		res, err := Verify(p, a)
		if res != nil {
			d.Steps = res.Steps
		}
		if err != nil {
			return d, fmt.Errorf("signed data rejected: %w", err)
		}
		d.Content, d.ContentType, d.Signed = res.Content, res.ContentType, true
	} else {
		var err error
		if d.Content, d.ContentType, err = d.unsigned(p, a.ConveyedInformation); err != nil {
			return d, err
		}
	}
	d.XML = isXML(d.ContentType, d.Content)
	info, err := conveyed.Parse(d.Content, d.XML)
	if err != nil {
		return d, fmt.Errorf("conveyed information (%s): %w", cms.Name(d.ContentType), err)
	}
	d.Info = info
	return d, nil
}

// unsigned opens conveyed information that came without a voucher: plain,
// or encrypted to the device.
func (d *Decoded) unsigned(p Policy, der []byte) ([]byte, asn1.ObjectIdentifier, error) {
	content, contentType, err := cms.UnsignedContent(der)
	if err == nil {
		return content, contentType, nil
	}
	switch {
	case contentType.Equal(cms.OIDSignedData):
		// RFC 8572 §5.4: signed conveyed information is only valid
		// together with a voucher and an owner certificate.
		return nil, nil, errors.New("conveyed information is signed, but no ownership voucher and owner certificate came with it")
	case contentType.Equal(cms.OIDEnvelopedData), contentType.Equal(cms.OIDAuthEnvelopedData):
		if p.DecryptionKey == nil || p.IDevID == nil {
			return nil, nil, errors.New("conveyed information is encrypted and the device has no decryption key")
		}
		plain, innerType, err := cms.Decrypt(der, p.IDevID, p.DecryptionKey)
		if err != nil {
			return nil, nil, fmt.Errorf("decrypting conveyed information: %w", err)
		}
		inner, err := Rewrap(plain, innerType)
		if err != nil {
			return nil, nil, fmt.Errorf("decrypting conveyed information: %w", err)
		}
		d.Steps = append(d.Steps, "conveyed-information decrypted with the device key")
		return d.unsigned(p, inner)
	}
	return nil, nil, fmt.Errorf("conveyed information: %w", err)
}

// isXML: .42 says XML, .43 says JSON, and id-data leaves it to the content
// (RFC 8572 §3.1), which is sniffed.
func isXML(contentType asn1.ObjectIdentifier, content []byte) bool {
	if contentType.Equal(cms.OIDSZTPConveyedInfoXML) {
		return true
	}
	if contentType.Equal(cms.OIDSZTPConveyedInfoJSON) {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(content, " \t\r\n\xef\xbb\xbf"), []byte("<"))
}
