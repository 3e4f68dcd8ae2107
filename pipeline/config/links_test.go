package config_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline/config"
)

func TestCloudFrontLinkSettings(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	path := filepath.Join(t.TempDir(), "framefleet.yaml")
	file := "bucket: renders\nregion: eu-west-1\nlink_expiry: 30d\nlinks:\n  cloudfront_domain: d111111abcdef8.cloudfront.net\n  cloudfront_key_pair_id: K2JCJMDEHXQW5F\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}

	// The private key comes from the environment (a secret), the rest from the file.
	c, err := config.Load(path, envMap(map[string]string{"FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY": keyPEM}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("30-day CloudFront links refused: %v", err)
	}
	cf := c.StoreOptions().CloudFront
	if cf.Domain != "d111111abcdef8.cloudfront.net" || cf.KeyPairID != "K2JCJMDEHXQW5F" || cf.PrivateKey != strings.TrimSpace(keyPEM) {
		t.Errorf("store options carry domain %q, key pair id %q and a key of %d bytes; want the file's and the environment's", cf.Domain, cf.KeyPairID, len(cf.PrivateKey))
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no private key", nil, []string{"links.cloudfront_private_key is empty", "FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY"}},
		{"not a key", map[string]string{"FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY": "secret"}, []string{"not a PEM private key"}},
		{"local store", map[string]string{"FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY": keyPEM, "FRAMEFLEET_BUCKET": " ", "FRAMEFLEET_STORE": "/tmp/renders"},
			[]string{"store is not S3"}},
		{"longer than a year", map[string]string{"FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY": keyPEM, "FRAMEFLEET_LINK_EXPIRY": "400d"}, []string{"at most 366 days"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(path, envMap(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "local store" {
				c.Bucket = ""
			}
			err = c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	// Without CloudFront, 30 days is beyond what S3 links allow.
	c = config.Defaults()
	if err := c.Set("link_expiry", "30d"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "links.cloudfront_*") {
		t.Errorf("30-day S3 links: err = %v, want the 7-day limit and the CloudFront hint", err)
	}
}
