package image

import (
	"net/url"
	"path"
	"strings"
)

// fallbackName is used when a URI's path yields nothing usable as a file name.
const fallbackName = "image"

// maxNameLength keeps names well under every file system's limit.
const maxNameLength = 128

// finalName derives the staged image's file name from the last element of the
// URI's path. The URI comes from conveyed information, so the result is
// reduced to a single, plain element: no separators, no "..", no leading dot,
// no control or shell-special characters. Content-Disposition is ignored on
// purpose: the server, which may be unauthenticated, must not choose names.
func finalName(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return fallbackName
	}
	base := path.Base(path.Clean("/" + u.Path))
	if base == "/" {
		return fallbackName
	}
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '.', r == '-', r == '_', r == '+':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := strings.TrimLeft(b.String(), ".")
	if len(name) > maxNameLength {
		name = name[len(name)-maxNameLength:] // keep the extension
		name = strings.TrimLeft(name, ".")
	}
	if name == "" {
		return fallbackName
	}
	return name
}
