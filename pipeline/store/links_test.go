package store_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func pkcs1PEM(key *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

func pkcs8PEM(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// verifyCloudFront checks a signed URL the way CloudFront does, from AWS's
// description of canned policies rather than the SDK's code: the policy is
// rebuilt from the URL and its expiry, and the signature must be an RSA
// SHA-1 signature of it by the public key.
func verifyCloudFront(t *testing.T, signed string, pub *rsa.PublicKey, keyID string) (resource string, expires time.Time) {
	t.Helper()
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if got := q.Get("Key-Pair-Id"); got != keyID {
		t.Errorf("Key-Pair-Id = %q, want %q", got, keyID)
	}
	epoch, err := strconv.ParseInt(q.Get("Expires"), 10, 64)
	if err != nil {
		t.Fatalf("Expires %q: %v", q.Get("Expires"), err)
	}
	resource = signed[:strings.Index(signed, "?")]
	policy := fmt.Sprintf(`{"Statement":[{"Resource":"%s","Condition":{"DateLessThan":{"AWS:EpochTime":%d}}}]}`, resource, epoch)
	sig, err := base64.StdEncoding.DecodeString(strings.NewReplacer("-", "+", "_", "=", "~", "/").Replace(q.Get("Signature")))
	if err != nil {
		t.Fatalf("Signature is not CloudFront's base64: %v", err)
	}
	digest := sha1.Sum([]byte(policy))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, digest[:], sig); err != nil {
		t.Errorf("signature does not verify with the public key: %v", err)
	}
	return resource, time.Unix(epoch, 0)
}

func TestCloudFrontLinks(t *testing.T) {
	ctx := context.Background()
	key := rsaKey(t)
	keyFile := filepath.Join(t.TempDir(), "cf.pem")
	if err := os.WriteFile(keyFile, []byte(pkcs8PEM(t, key)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cf     store.CloudFront
		prefix string
		base   string
	}{
		{"PKCS#1 key in the configuration", store.CloudFront{Domain: "d111111abcdef8.cloudfront.net", KeyPairID: "K2JCJMDEHXQW5F", PrivateKey: pkcs1PEM(key)},
			"", "https://d111111abcdef8.cloudfront.net/"},
		{"PKCS#8 key file, alternate domain, prefix", store.CloudFront{Domain: "https://media.example.com/", KeyPairID: "K2JCJMDEHXQW5F", PrivateKeyFile: keyFile},
			"team/a", "https://media.example.com/team/a/"},
		{"key from an environment variable with literal \\n", store.CloudFront{Domain: "d1.cloudfront.net", KeyPairID: "K2JCJMDEHXQW5F",
			PrivateKey: strings.ReplaceAll(pkcs1PEM(key), "\n", `\n`)}, "", "https://d1.cloudfront.net/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newS3(t, tc.prefix, func(o *store.Options) { o.CloudFront = tc.cf })
			before := time.Now()
			link, err := st.Link(ctx, "runs/r1/Szene ü.mp4", 30*24*time.Hour) // longer than S3 allows
			if err != nil {
				t.Fatal(err)
			}
			resource, expires := verifyCloudFront(t, link, &key.PublicKey, "K2JCJMDEHXQW5F")
			if want := tc.base + "runs/r1/Szene%20%C3%BC.mp4"; resource != want {
				t.Errorf("resource %s, want %s", resource, want)
			}
			if lo, hi := before.Add(30*24*time.Hour-time.Second), time.Now().Add(30*24*time.Hour); expires.Before(lo) || expires.After(hi) {
				t.Errorf("expires %s, want 30 days from now", expires)
			}
			at := store.LinksExpireAt(ctx, st, 30*24*time.Hour)
			if at == nil || at.Sub(expires).Abs() > 2*time.Second {
				t.Errorf("LinksExpireAt = %v, want the link's expiry %s", at, expires)
			}
			if _, err := st.Link(ctx, "runs/r1/x.mp4", 400*24*time.Hour); err == nil || !strings.Contains(err.Error(), "366 days") {
				t.Errorf("a 400-day link: err = %v, want one naming the 366-day limit", err)
			}
		})
	}

	// A tampered URL must not verify: the check above can fail.
	st, _ := newS3(t, "", func(o *store.Options) {
		o.CloudFront = store.CloudFront{Domain: "d1.cloudfront.net", KeyPairID: "K1", PrivateKey: pkcs1PEM(key)}
	})
	link, err := st.Link(ctx, "runs/r1/a.mp4", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := rsaKey(t)
	u, _ := url.Parse(link)
	sig, _ := base64.StdEncoding.DecodeString(strings.NewReplacer("-", "+", "_", "=", "~", "/").Replace(u.Query().Get("Signature")))
	digest := sha1.Sum([]byte(`{"Statement":[{"Resource":"https://d1.cloudfront.net/runs/r1/a.mp4","Condition":{"DateLessThan":{"AWS:EpochTime":` + u.Query().Get("Expires") + `}}}]}`))
	if rsa.VerifyPKCS1v15(&other.PublicKey, crypto.SHA1, digest[:], sig) == nil {
		t.Error("the signature verified with an unrelated key")
	}
	if rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA1, digest[:], sig) != nil {
		t.Error("the signature does not verify with the right key")
	}
}

func TestCloudFrontSettingsErrors(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := pkcs1PEM(rsaKey(t))
	for _, tc := range []struct {
		name string
		cf   store.CloudFront
		want []string
	}{
		{"only a domain", store.CloudFront{Domain: "d1.cloudfront.net"}, []string{"cloudfront_key_pair_id is empty", "cloudfront_private_key is empty"}},
		{"no domain", store.CloudFront{KeyPairID: "K1", PrivateKey: good}, []string{"cloudfront_domain is empty"}},
		{"key and file", store.CloudFront{Domain: "d1.cloudfront.net", KeyPairID: "K1", PrivateKey: good, PrivateKeyFile: "/x.pem"}, []string{"both set"}},
		{"not PEM", store.CloudFront{Domain: "d1.cloudfront.net", KeyPairID: "K1", PrivateKey: "hunter2"}, []string{"not a PEM private key", "openssl genrsa"}},
		{"EC key", store.CloudFront{Domain: "d1.cloudfront.net", KeyPairID: "K1", PrivateKey: pkcs8PEM(t, ecKey)}, []string{"only with RSA"}},
		{"missing file", store.CloudFront{Domain: "d1.cloudfront.net", KeyPairID: "K1", PrivateKeyFile: "/nonexistent/cf.pem"}, []string{"/nonexistent/cf.pem"}},
		{"domain with a query", store.CloudFront{Domain: "https://d1.cloudfront.net/?a=b", KeyPairID: "K1", PrivateKey: good}, []string{"is not a domain"}},
		{"ftp domain", store.CloudFront{Domain: "ftp://d1.cloudfront.net", KeyPairID: "K1", PrivateKey: good}, []string{"is not a domain"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.NewCloudFrontSigner(tc.cf)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			srv := s3test.Start(t)
			opts := s3Options(srv)
			opts.CloudFront = tc.cf
			if _, err := store.NewS3(context.Background(), srv.Bucket, "", opts); err == nil {
				t.Error("NewS3 accepted the settings")
			}
		})
	}
}

func TestLinksExpireAt(t *testing.T) {
	ctx := context.Background()
	file, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if at := store.LinksExpireAt(ctx, file, time.Hour); at != nil {
		t.Errorf("file store links expire at %s, want never (nil)", at)
	}

	srv := s3test.Start(t)
	credsExpire := time.Now().Add(50 * time.Minute).Truncate(time.Second)
	expiring := aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		c, err := srv.Credentials().Retrieve(ctx)
		c.CanExpire, c.Expires = true, credsExpire
		return c, err
	})
	for _, tc := range []struct {
		name   string
		creds  aws.CredentialsProvider
		expiry time.Duration
		want   time.Time
	}{
		{"static credentials: the link's own expiry", srv.Credentials(), 2 * time.Hour, time.Now().Add(2 * time.Hour)},
		{"default expiry", srv.Credentials(), 0, time.Now().Add(store.DefaultLinkExpiry)},
		{"credentials expire first (OIDC)", expiring, 24 * time.Hour, credsExpire},
		{"link expires first", expiring, 10 * time.Minute, time.Now().Add(10 * time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := s3Options(srv)
			opts.Credentials = tc.creds
			st, err := store.NewS3(ctx, srv.Bucket, "", opts)
			if err != nil {
				t.Fatal(err)
			}
			at := store.LinksExpireAt(ctx, st, tc.expiry)
			if at == nil || at.Sub(tc.want).Abs() > 2*time.Second {
				t.Errorf("LinksExpireAt = %v, want %s", at, tc.want)
			}
		})
	}
}
