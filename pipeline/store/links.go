package store

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/cloudfront/sign"
)

// MaxCloudFrontLinkExpiry bounds CloudFront links. CloudFront itself sets no
// limit; a year keeps a leaked link from living for ever.
const MaxCloudFrontLinkExpiry = 366 * 24 * time.Hour

// CloudFront configures CloudFront signed URLs for an S3 store whose bucket
// is the origin of a distribution (deploy/framefleet.yaml makes one with
// Origin Access Control when CloudFrontPublicKey is given).
type CloudFront struct {
	// Domain is the distribution's domain, e.g. d111111abcdef8.cloudfront.net,
	// or an https:// URL of an alternate domain name.
	Domain string
	// KeyPairID is the id of the CloudFront public key in the distribution's
	// key group, e.g. K2JCJMDEHXQW5F.
	KeyPairID string
	// PrivateKey is the matching RSA private key in PEM (PKCS#1 or PKCS#8);
	// PrivateKeyFile names a file holding it instead.
	PrivateKey     string
	PrivateKeyFile string
}

// Enabled reports whether any CloudFront setting is given.
func (c CloudFront) Enabled() bool {
	return c.Domain != "" || c.KeyPairID != "" || c.PrivateKey != "" || c.PrivateKeyFile != ""
}

// CloudFrontSigner signs CloudFront URLs with a canned policy (an expiry
// time only): an S3 store's Link returns them in place of presigned S3 URLs,
// which die with the credentials that signed them (about an hour under
// GitHub's OIDC). The links do not depend on AWS credentials.
type CloudFrontSigner struct {
	base   *url.URL
	signer *sign.URLSigner
}

// NewCloudFrontSigner checks c and loads its private key.
func NewCloudFrontSigner(c CloudFront) (*CloudFrontSigner, error) {
	var errs []error
	if c.Domain == "" {
		errs = append(errs, errors.New("links.cloudfront_domain is empty: give the distribution's domain, e.g. d111111abcdef8.cloudfront.net (the stack output CloudFrontDomain)"))
	}
	if c.KeyPairID == "" {
		errs = append(errs, errors.New("links.cloudfront_key_pair_id is empty: give the id of the distribution's public key, e.g. K2JCJMDEHXQW5F (the stack output CloudFrontKeyPairId)"))
	}
	if c.PrivateKey != "" && c.PrivateKeyFile != "" {
		errs = append(errs, errors.New("links.cloudfront_private_key and links.cloudfront_private_key_file are both set: give one"))
	}
	if c.PrivateKey == "" && c.PrivateKeyFile == "" {
		errs = append(errs, errors.New("links.cloudfront_private_key is empty: give the PEM private key matching the public key (env FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY, e.g. from a secret), or links.cloudfront_private_key_file"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	base, err := cloudFrontBase(c.Domain)
	if err != nil {
		return nil, err
	}
	pemText := c.PrivateKey
	where := "links.cloudfront_private_key"
	if c.PrivateKeyFile != "" {
		where = "links.cloudfront_private_key_file " + c.PrivateKeyFile
		b, err := os.ReadFile(c.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		pemText = string(b)
	}
	key, err := loadRSAKey(pemText)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: give an RSA private key in PEM, as made by `openssl genrsa -out private_key.pem 2048`", where, err)
	}
	return &CloudFrontSigner{base: base, signer: sign.NewURLSigner(c.KeyPairID, key)}, nil
}

func cloudFrontBase(domain string) (*url.URL, error) {
	raw := domain
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" {
		return nil, fmt.Errorf("links.cloudfront_domain %q is not a domain: give e.g. d111111abcdef8.cloudfront.net or https://media.example.com", domain)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// loadRSAKey reads a PKCS#1 or PKCS#8 RSA key; CloudFront accepts only RSA.
func loadRSAKey(pemText string) (crypto.Signer, error) {
	// Secrets pasted into environment variables sometimes carry literal \n.
	pemText = strings.ReplaceAll(strings.TrimSpace(pemText), `\n`, "\n")
	if key, err := sign.LoadPEMPrivKey(strings.NewReader(pemText)); err == nil {
		return key, nil
	}
	k, err := sign.LoadPEMPrivKeyPKCS8(strings.NewReader(pemText))
	if err != nil {
		return nil, fmt.Errorf("not a PEM private key (%v)", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key: CloudFront signs only with RSA keys", k)
	}
	return rk, nil
}

// SignLink returns a URL for the S3 object key (the store's prefix
// included) that works until expires.
func (s *CloudFrontSigner) SignLink(objectKey string, expires time.Time) (string, error) {
	parts := strings.Split(objectKey, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p) // CloudFront signs ASCII URLs only
	}
	raw := s.base.String() + "/" + strings.Join(parts, "/")
	signed, err := s.signer.Sign(raw, expires)
	if err != nil {
		return "", fmt.Errorf("sign CloudFront link to %s: %w", objectKey, err)
	}
	return signed, nil
}

// linkExpirer is implemented by stores whose links expire.
type linkExpirer interface {
	LinksExpireAt(ctx context.Context, expiry time.Duration) *time.Time
}

// LinksExpireAt is when links st.Link makes now with expiry stop working:
// nil when they do not expire (local files). Front-ends show it next to the
// links. For presigned S3 links it is the earlier of the expiry and the
// signing credentials' own expiry.
func LinksExpireAt(ctx context.Context, st Store, expiry time.Duration) *time.Time {
	if e, ok := st.(linkExpirer); ok {
		return e.LinksExpireAt(ctx, expiry)
	}
	return nil
}
