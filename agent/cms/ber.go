package cms

import (
	"bytes"
	"errors"
	"fmt"
)

// berToDER rewrites indefinite-length BER encodings (what `openssl cms
// -stream` and some PKCS#7 tools emit) with definite lengths, so the DER
// parser can read them. Nothing else changes: a signature over signed
// attributes is over their own DER, and the content digest is over the
// content octets, which stay the same. RFC 8572's YANG types ask for DER;
// accepting this one deviation costs little and spares owners a failure
// that openssl itself does not report.
func berToDER(b []byte) ([]byte, error) {
	var out bytes.Buffer
	rest, err := convertBER(b, &out, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errTrailingData
	}
	return out.Bytes(), nil
}

const maxBERDepth = 64

var errBER = errors.New("malformed BER")

// convertBER converts one TLV from b into out and returns what follows it.
func convertBER(b []byte, out *bytes.Buffer, depth int) ([]byte, error) {
	if depth > maxBERDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", errBER, maxBERDepth)
	}
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: truncated", errBER)
	}
	// Identifier octets, including high tag numbers.
	idLen := 1
	if b[0]&0x1f == 0x1f {
		for idLen < len(b) && b[idLen]&0x80 != 0 {
			idLen++
		}
		idLen++
		if idLen >= len(b) || idLen > 6 {
			return nil, fmt.Errorf("%w: bad tag", errBER)
		}
	}
	id, constructed := b[:idLen], b[0]&0x20 != 0
	b = b[idLen:]
	if b[0] == 0x80 { // indefinite length: children until end-of-contents
		if !constructed {
			return nil, fmt.Errorf("%w: indefinite length on a primitive value", errBER)
		}
		b = b[1:]
		var content bytes.Buffer
		for {
			if len(b) < 2 {
				return nil, fmt.Errorf("%w: missing end-of-contents", errBER)
			}
			if b[0] == 0 && b[1] == 0 {
				b = b[2:]
				break
			}
			var err error
			if b, err = convertBER(b, &content, depth+1); err != nil {
				return nil, err
			}
		}
		writeTLV(out, id, content.Bytes())
		return b, nil
	}
	length, n, err := berLength(b)
	if err != nil {
		return nil, err
	}
	b = b[n:]
	if length > len(b) {
		return nil, fmt.Errorf("%w: length %d past the end", errBER, length)
	}
	value, rest := b[:length], b[length:]
	if !constructed {
		writeTLV(out, id, value)
		return rest, nil
	}
	var content bytes.Buffer
	for len(value) > 0 {
		if value, err = convertBER(value, &content, depth+1); err != nil {
			return nil, err
		}
	}
	writeTLV(out, id, content.Bytes())
	return rest, nil
}

func berLength(b []byte) (length, n int, err error) {
	if b[0] < 0x80 {
		return int(b[0]), 1, nil
	}
	octets := int(b[0] & 0x7f)
	if octets == 0 || octets > 4 || len(b) < 1+octets {
		return 0, 0, fmt.Errorf("%w: bad length", errBER)
	}
	for _, c := range b[1 : 1+octets] {
		length = length<<8 | int(c)
	}
	if length < 0 || length > maxArtifactSize {
		return 0, 0, fmt.Errorf("%w: length %d", errBER, length)
	}
	return length, 1 + octets, nil
}

func writeTLV(out *bytes.Buffer, id, value []byte) {
	out.Write(id)
	switch n := len(value); {
	case n < 0x80:
		out.WriteByte(byte(n))
	case n < 1<<8:
		out.Write([]byte{0x81, byte(n)})
	case n < 1<<16:
		out.Write([]byte{0x82, byte(n >> 8), byte(n)})
	case n < 1<<24:
		out.Write([]byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)})
	default:
		out.Write([]byte{0x84, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	out.Write(value)
}
