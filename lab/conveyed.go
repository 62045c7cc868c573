package lab

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

// The RFC 7951 JSON of ietf-sztp-conveyed-info. Struct field order is the
// YANG order; omitempty leaves absent leaves out.
type conveyedOnboarding struct {
	BootImage               *conveyedBootImage `json:"boot-image,omitempty"`
	PreConfigurationScript  []byte             `json:"pre-configuration-script,omitempty"`
	ConfigurationHandling   string             `json:"configuration-handling,omitempty"`
	Configuration           []byte             `json:"configuration,omitempty"`
	PostConfigurationScript []byte             `json:"post-configuration-script,omitempty"`
}

type conveyedBootImage struct {
	OSName            string                 `json:"os-name,omitempty"`
	OSVersion         string                 `json:"os-version,omitempty"`
	DownloadURI       []string               `json:"download-uri,omitempty"`
	ImageVerification []conveyedVerification `json:"image-verification,omitempty"`
}

type conveyedVerification struct {
	HashAlgorithm string `json:"hash-algorithm"`
	HashValue     string `json:"hash-value"`
}

type conveyedRedirect struct {
	BootstrapServer []conveyedBootstrapServer `json:"bootstrap-server"`
}

type conveyedBootstrapServer struct {
	Address     string `json:"address"`
	Port        int    `json:"port,omitempty"`
	TrustAnchor []byte `json:"trust-anchor,omitempty"`
}

// bootstrapOutput is the get-bootstrapping-data output; the owner
// certificate and voucher come with signed conveyed information only.
type bootstrapOutput struct {
	ReportingLevel      string `json:"reporting-level,omitempty"`
	ConveyedInformation []byte `json:"conveyed-information"`
	OwnerCertificate    []byte `json:"owner-certificate,omitempty"`
	OwnershipVoucher    []byte `json:"ownership-voucher,omitempty"`
}

// servedImage is a boot image the server offers under /images/.
type servedImage struct {
	name string
	path string // file to serve, or
	data []byte // bytes to serve
	sum  [sha256.Size]byte
}

// answer is a Definition turned into what the server sends: built once when
// the definition is installed, so every request gets the same bytes.
type answer struct {
	def          *Definition
	status       int // get-bootstrapping-data error status, 0 for 200
	raw          *RawResponse
	body         []byte // the 200 JSON body (unsigned answers)
	signed       *signedAnswer
	level        string // reporting-level of the output
	conveyedJSON []byte // kept for logs and tests
	images       map[string]*servedImage
	err          error // why the definition could not be installed
}

// buildAnswer reads the files the definition names and encodes its answer;
// imageURL maps an image name to the URL at which this server serves it.
// pki provides the signing credentials of a signed definition.
func buildAnswer(d *Definition, pki *PKI, imageURL func(string) string) (*answer, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	a := &answer{def: d, status: d.Status, raw: d.Raw, images: map[string]*servedImage{}}
	var top map[string]any
	switch {
	case d.Onboarding != nil:
		o, err := a.encodeOnboarding(d.Onboarding, imageURL)
		if err != nil {
			return nil, fmt.Errorf("building onboarding-information: %w", err)
		}
		top = map[string]any{"ietf-sztp-conveyed-info:onboarding-information": o}
	case len(d.Redirect) > 0:
		r, err := encodeRedirect(d.Redirect)
		if err != nil {
			return nil, fmt.Errorf("building redirect-information: %w", err)
		}
		top = map[string]any{"ietf-sztp-conveyed-info:redirect-information": r}
	default:
		return a, nil // Status or Raw only
	}
	conveyed, err := json.Marshal(top)
	if err != nil {
		return nil, fmt.Errorf("encoding conveyed information: %w", err)
	}
	a.conveyedJSON, a.level = conveyed, d.ReportingLevel
	if a.level == "" {
		a.level = ReportingMinimal
	}
	contentType := d.ContentType
	if d.Signed != nil && d.Signed.ContentType != "" {
		contentType = d.Signed.ContentType
	}
	oid := cms.OIDSZTPConveyedInfoJSON
	if contentType == ContentTypeData {
		oid = cms.OIDData
	}
	if d.Signed != nil {
		if a.signed, err = newSignedAnswer(d.Signed, pki, conveyed, oid); err != nil {
			return nil, fmt.Errorf("preparing signed answers: %w", err)
		}
		return a, nil
	}
	der, err := cms.MarshalData(oid, conveyed)
	if err != nil {
		return nil, fmt.Errorf("wrapping conveyed information in CMS %s: %w", cms.Name(oid), err)
	}
	if a.body, err = a.outputBody(bootstrapOutput{ConveyedInformation: der}); err != nil {
		return nil, err
	}
	return a, nil
}

// outputBody encodes the get-bootstrapping-data output JSON.
func (a *answer) outputBody(out bootstrapOutput) ([]byte, error) {
	out.ReportingLevel = a.level
	body, err := json.Marshal(map[string]bootstrapOutput{outputMember: out})
	if err != nil {
		return nil, fmt.Errorf("encoding get-bootstrapping-data output: %w", err)
	}
	return body, nil
}

// signedBody makes the signed artifacts for one request and encodes the
// output around them.
func (a *answer) signedBody(now time.Time, req deviceRequest) ([]byte, *signedArtifacts, error) {
	arts, err := a.signed.build(now, req)
	if err != nil {
		return nil, nil, err
	}
	body, err := a.outputBody(bootstrapOutput{
		ConveyedInformation: arts.conveyed,
		OwnerCertificate:    arts.ownerCertificate,
		OwnershipVoucher:    arts.voucher,
	})
	if err != nil {
		return nil, nil, err
	}
	return body, arts, nil
}

func (a *answer) encodeOnboarding(o *Onboarding, imageURL func(string) string) (*conveyedOnboarding, error) {
	var out conveyedOnboarding
	var err error
	if out.PreConfigurationScript, err = contentOf(o.PreConfigurationScript, o.PreConfigurationScriptData); err != nil {
		return nil, fmt.Errorf("reading pre-configuration-script: %w", err)
	}
	if out.Configuration, err = contentOf(o.Configuration, o.ConfigurationData); err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	if out.PostConfigurationScript, err = contentOf(o.PostConfigurationScript, o.PostConfigurationScriptData); err != nil {
		return nil, fmt.Errorf("reading post-configuration-script: %w", err)
	}
	out.ConfigurationHandling = o.ConfigurationHandling
	if o.BootImage != nil {
		if out.BootImage, err = a.encodeBootImage(o.BootImage, imageURL); err != nil {
			return nil, fmt.Errorf("boot-image: %w", err)
		}
	}
	return &out, nil
}

// contentOf returns data, or the content of path; an empty result is
// returned as non-nil so that an empty script still appears as a leaf.
func contentOf(path string, data []byte) ([]byte, error) {
	if path == "" {
		return data, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

func (a *answer) encodeBootImage(b *BootImage, imageURL func(string) string) (*conveyedBootImage, error) {
	out := &conveyedBootImage{OSName: b.OSName, OSVersion: b.OSVersion}
	img, err := loadImage(b)
	if err != nil {
		return nil, err
	}
	servedURL := ""
	if img != nil {
		a.images[img.name] = img
		servedURL = imageURL(img.name)
	}
	placed := false
	for _, u := range b.DownloadURIs {
		if strings.Contains(u, ImagePlaceholder) {
			u = strings.ReplaceAll(u, ImagePlaceholder, servedURL)
			placed = true
		}
		out.DownloadURI = append(out.DownloadURI, u)
	}
	if img != nil && !placed {
		out.DownloadURI = append(out.DownloadURI, servedURL)
	}
	var sum []byte
	switch {
	case b.SHA256 != "":
		if sum, err = parseHex(b.SHA256); err != nil {
			return nil, fmt.Errorf("sha-256: %w", err)
		}
	case img != nil:
		sum = img.sum[:]
	}
	if sum != nil {
		out.ImageVerification = []conveyedVerification{{
			HashAlgorithm: "ietf-sztp-conveyed-info:sha-256",
			HashValue:     colonHex(sum),
		}}
	}
	return out, nil
}

// loadImage hashes the image the boot image serves, or returns nil when it
// serves none.
func loadImage(b *BootImage) (*servedImage, error) {
	switch {
	case b.ImageData != nil:
		name := b.ImageName
		if name == "" {
			name = defaultImageName
		}
		return &servedImage{name: name, data: b.ImageData, sum: sha256.Sum256(b.ImageData)}, nil
	case b.Image != "":
		f, err := os.Open(b.Image)
		if err != nil {
			return nil, fmt.Errorf("reading image: %w", err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return nil, fmt.Errorf("hashing image %s: %w", b.Image, err)
		}
		img := &servedImage{name: filepath.Base(b.Image), path: b.Image}
		h.Sum(img.sum[:0])
		return img, nil
	}
	return nil, nil
}

func encodeRedirect(servers []RedirectServer) (*conveyedRedirect, error) {
	out := &conveyedRedirect{}
	for _, s := range servers {
		entry := conveyedBootstrapServer{Address: s.Address, Port: s.Port}
		certs := s.TrustAnchorCerts
		if s.TrustAnchor != "" {
			var err error
			if certs, err = readCertificates(s.TrustAnchor); err != nil {
				return nil, fmt.Errorf("trust anchor of %s: %w", s.Address, err)
			}
		}
		if len(certs) > 0 {
			bag, err := cms.MarshalCertificateBag(certs)
			if err != nil {
				return nil, fmt.Errorf("building the trust-anchor certificate bag of %s: %w", s.Address, err)
			}
			entry.TrustAnchor = bag
		}
		out.BootstrapServer = append(out.BootstrapServer, entry)
	}
	return out, nil
}
