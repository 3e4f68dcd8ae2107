package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

// loopbackDNSClient resolves names through a DNS "server" on a loopback
// port where nothing listens, so every lookup fails as an unknown name does,
// with a real *net.DNSError, and no query leaves the machine.
func loopbackDNSClient() *http.Client {
	resolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:9")
		},
	}
	dialer := &net.Dialer{Resolver: resolver, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
}

func TestS3VirtualHostLookupFailureHintsPathStyle(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoint  string
		pathStyle bool
		wantHint  bool
	}{
		{"virtual host", "http://minio.internal.invalid:9000", false, true},
		// (The SDK addresses a server on an IP address by path by itself.)
		// Path-style requests look up the endpoint's own name: no hint then.
		{"path style", "http://minio.internal.invalid:9000", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.NewS3(context.Background(), "renders", "p", store.Options{
				Region:       "us-east-1",
				Endpoint:     tc.endpoint,
				UsePathStyle: tc.pathStyle,
				Credentials:  (&s3test.Server{}).Credentials(),
				HTTPClient:   loopbackDNSClient(),
				MaxAttempts:  1,
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.Stat(context.Background(), "runs/r/plan.json")
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) {
				t.Fatalf("Stat: %v, want a DNS lookup failure", err)
			}
			var hint *store.HintError
			if got := errors.As(err, &hint); got != tc.wantHint {
				t.Fatalf("HintError %v, want %v: %v", got, tc.wantHint, err)
			}
			if !tc.wantHint {
				return
			}
			if hint.Kind != store.HintPathStyle || hint.Setting != "s3.path_style" || hint.Value != "true" {
				t.Errorf("hint %+v, want kind path_style, setting s3.path_style=true", hint)
			}
			if !strings.Contains(err.Error(), dnsErr.Name) || !strings.HasPrefix(dnsErr.Name, "renders.") || !strings.Contains(err.Error(), "path-style") {
				t.Errorf("message %q should name the looked-up host and path-style addressing", err)
			}
			if store.IsPermanent(err) {
				t.Error("a DNS failure is reported as permanent; it can be an outage")
			}
		})
	}
}

func TestS3AccessDeniedHintsCredentials(t *testing.T) {
	ctx := context.Background()
	st, srv := newS3(t, "p", nil, s3test.WithFaults(1, 1, http.StatusForbidden))
	calls := []struct {
		name string
		call func() error
	}{
		{"stat (HEAD, no body)", func() error { _, err := st.Stat(ctx, "runs/r/plan.json"); return err }},
		{"put", func() error { return st.Put(ctx, "runs/r/plan.json", bytes.NewReader([]byte("{}"))) }},
		{"get versioned", func() error { _, _, err := st.GetVersioned(ctx, "runs/r/run.json"); return err }},
		{"put if version", func() error { _, err := st.PutIfVersion(ctx, "runs/r/run.json", []byte("{}"), ""); return err }},
		{"list page", func() error { _, _, err := st.ListPage(ctx, "runs/", "", 10); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			srv.Reset()
			err := c.call()
			var hint *store.HintError
			if !errors.As(err, &hint) || hint.Kind != store.HintCredentials || hint.Setting != "" {
				t.Fatalf("err = %v, want a credentials HintError", err)
			}
			if !strings.Contains(err.Error(), "credentials") || !strings.Contains(err.Error(), "s3://"+srv.Bucket) {
				t.Errorf("message %q should suggest checking credentials for the bucket", err)
			}
			if !store.IsPermanent(err) {
				t.Errorf("403 is not permanent: %v", err)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d requests for a 403, want 1: it must not be retried", n)
			}
		})
	}
}

func TestIsPermanentOnRealAnswers(t *testing.T) {
	ctx := context.Background()
	st, srv := newS3(t, "p", func(o *store.Options) { o.MaxAttempts = 2 })
	missingBucket, err := store.NewS3(ctx, "no-such-bucket", "", s3Options(srv))
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	refused, err := store.NewS3(ctx, srv.Bucket, "", func() store.Options {
		o := s3Options(srv)
		o.Endpoint, o.MaxAttempts = "http://"+closedPort(t), 1
		return o
	}())
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, st, "runs/r/run.json", []byte("{}"))
	for _, tc := range []struct {
		name string
		call func() error
		want bool
	}{
		{"NoSuchBucket", func() error { _, err := missingBucket.List(ctx, ""); return err }, true},
		{"missing key is for the caller to judge", func() error { _, _, err := st.GetVersioned(ctx, "runs/none/run.json"); return err }, false},
		{"conflict", func() error { _, err := st.PutIfVersion(ctx, "runs/r/run.json", []byte("x"), ""); return err }, false},
		{"server errors after every attempt", func() error {
			srv.SetFaultRate(1)
			defer srv.SetFaultRate(0)
			_, err := st.Stat(ctx, "runs/r/run.json")
			return err
		}, false},
		{"connection refused", func() error { _, err := refused.Stat(ctx, "runs/r/run.json"); return err }, false},
		{"cancelled", func() error { _, err := st.Stat(cancelled, "runs/r/run.json"); return err }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			if got := store.IsPermanent(err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestIsPermanentCodes covers the codes the test server cannot produce,
// as the SDK reports them.
func TestIsPermanentCodes(t *testing.T) {
	for code, want := range map[string]bool{
		"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
		"PermanentRedirect": true, "AuthorizationHeaderMalformed": true, "InvalidBucketName": true,
		"InvalidObjectState": true, "KeyTooLongError": true,
		"ExpiredToken": false, "RequestTimeTooSkewed": false, "RequestTimeout": false,
		"SlowDown": false, "InternalError": false, "NoSuchKey": false,
	} {
		err := fmt.Errorf("read s3://b/k: %w", &smithy.GenericAPIError{Code: code})
		if got := store.IsPermanent(err); got != want {
			t.Errorf("IsPermanent(%s) = %v, want %v", code, got, want)
		}
	}
	if store.IsPermanent(nil) {
		t.Error("IsPermanent(nil)")
	}
}
