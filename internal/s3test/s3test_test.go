package s3test_test

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/s3test"
)

type s3Error struct {
	Code string `xml:"Code"`
}

// get lists the bucket with a plain (unsigned) request: gofakes3 does not
// check signatures, so the fault injector is observable without the SDK.
func get(t *testing.T, srv *s3test.Server) (int, s3Error) {
	t.Helper()
	resp, err := http.Get(srv.Endpoint + "/" + srv.Bucket + "?list-type=2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e s3Error
	if resp.StatusCode != http.StatusOK {
		if err := xml.Unmarshal(body, &e); err != nil {
			t.Fatalf("status %d with a body that is not S3 error XML: %q", resp.StatusCode, body)
		}
	}
	return resp.StatusCode, e
}

func TestNoFaultsByDefault(t *testing.T) {
	srv := s3test.Start(t, s3test.WithBucket("my-bucket"))
	if status, _ := get(t, srv); status != http.StatusOK {
		t.Fatalf("listing the created bucket: status %d", status)
	}
	if srv.Faults() != 0 || len(srv.Requests()) != 1 {
		t.Errorf("faults %d, requests %d; want 0 and 1", srv.Faults(), len(srv.Requests()))
	}
}

func TestFaultsAreSeededAndTyped(t *testing.T) {
	sequence := func() []int {
		srv := s3test.Start(t, s3test.WithFaults(0.5, 7))
		var statuses []int
		for i := 0; i < 60; i++ {
			status, e := get(t, srv)
			switch status {
			case http.StatusOK:
			case http.StatusInternalServerError:
				if e.Code != "InternalError" {
					t.Errorf("500 with code %q", e.Code)
				}
			case http.StatusServiceUnavailable:
				if e.Code != "SlowDown" {
					t.Errorf("503 with code %q", e.Code)
				}
			default:
				t.Errorf("unexpected status %d", status)
			}
			statuses = append(statuses, status)
		}
		if srv.Faults() < 15 || srv.Faults() > 45 {
			t.Errorf("%d of 60 requests failed with rate 0.5", srv.Faults())
		}
		return statuses
	}
	a, b := sequence(), sequence()
	seen := map[int]bool{}
	for i := range a {
		seen[a[i]] = true
		if a[i] != b[i] {
			t.Fatalf("request %d: %d then %d with the same seed", i, a[i], b[i])
		}
	}
	if !seen[500] || !seen[503] || !seen[200] {
		t.Errorf("statuses seen %v, want 200, 500 and 503", seen)
	}
}

func TestSetFaultRate(t *testing.T) {
	srv := s3test.Start(t, s3test.WithFaults(1, 1, http.StatusServiceUnavailable))
	if status, _ := get(t, srv); status != http.StatusServiceUnavailable {
		t.Errorf("rate 1: status %d", status)
	}
	srv.SetFaultRate(0)
	if status, _ := get(t, srv); status != http.StatusOK {
		t.Errorf("rate 0: status %d", status)
	}
	srv.Reset()
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests after Reset", n)
	}
}

// put sends an unsigned PutObject with extra headers and returns the status,
// the ETag and the S3 error code.
func put(t *testing.T, srv *s3test.Server, key, body string, header map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, srv.Endpoint+"/"+srv.Bucket+"/"+key, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e s3Error
	if resp.StatusCode != http.StatusOK {
		if err := xml.Unmarshal(b, &e); err != nil {
			t.Fatalf("status %d with a body that is not S3 error XML: %q", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header.Get("ETag"), e.Code
}

// TestConditionalPutIsEnforced: the server answers failed If-None-Match and
// If-Match conditions as S3 does (412 PreconditionFailed) and keeps the
// object, which the store's conditional writes rely on.
func TestConditionalPutIsEnforced(t *testing.T) {
	srv := s3test.Start(t)
	status, v1, _ := put(t, srv, "k", "one", map[string]string{"If-None-Match": "*"})
	if status != http.StatusOK || v1 == "" {
		t.Fatalf("create if absent: status %d etag %q", status, v1)
	}
	status, v2, _ := put(t, srv, "k", "two", map[string]string{"If-Match": v1})
	if status != http.StatusOK || v2 == v1 {
		t.Fatalf("replace at the current ETag: status %d etag %q (was %q)", status, v2, v1)
	}
	for _, tc := range []struct {
		name   string
		key    string
		header map[string]string
	}{
		{"create over an existing key", "k", map[string]string{"If-None-Match": "*"}},
		{"stale If-Match", "k", map[string]string{"If-Match": v1}},
		{"If-Match on an absent key", "absent", map[string]string{"If-Match": v1}},
	} {
		status, _, code := put(t, srv, tc.key, "lost", tc.header)
		if status != http.StatusPreconditionFailed || code != "PreconditionFailed" {
			t.Errorf("%s: status %d code %q, want 412 PreconditionFailed", tc.name, status, code)
		}
	}
	obj, err := srv.Backend.GetObject(srv.Bucket, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Contents.Close()
	if b, _ := io.ReadAll(obj.Contents); string(b) != "two" {
		t.Errorf("object holds %q after refused writes, want two", b)
	}
}

func TestDownRefusesConnectionsUntilUp(t *testing.T) {
	srv := s3test.Start(t)
	if status, _, _ := put(t, srv, "kept", "data", nil); status != http.StatusOK {
		t.Fatalf("put: %d", status)
	}
	srv.Down()
	srv.Down() // twice is harmless
	if !srv.IsDown() {
		t.Error("IsDown false after Down")
	}
	_, err := http.Get(srv.Endpoint + "/" + srv.Bucket + "/kept")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET while down: %v, want connection refused", err)
	}
	srv.Up()
	resp, err := http.Get(srv.Endpoint + "/" + srv.Bucket + "/kept")
	if err != nil {
		t.Fatalf("GET after Up: %v", err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(b) != "data" {
		t.Errorf("GET after Up: %d %q, want the object stored before Down", resp.StatusCode, b)
	}
}

func TestHangHoldsRequestsUntilResume(t *testing.T) {
	srv := s3test.Start(t)
	srv.Hang()
	done := make(chan int, 1)
	go func() {
		status, _ := get(t, srv)
		done <- status
	}()
	for srv.Held() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case status := <-done:
		t.Fatalf("a hung server answered %d", status)
	default:
	}
	srv.Resume()
	if status := <-done; status != http.StatusOK {
		t.Errorf("after Resume: status %d, want 200", status)
	}
}

func TestWithoutConditionalWritesOverwrites(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []s3test.Option
		want int // status of the second create-if-absent
	}{
		{"conditions honoured", nil, http.StatusPreconditionFailed},
		{"conditions ignored", []s3test.Option{s3test.WithoutConditionalWrites()}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := s3test.Start(t, tc.opts...)
			var status int
			for range 2 {
				req, _ := http.NewRequest(http.MethodPut, srv.Endpoint+"/"+srv.Bucket+"/k", strings.NewReader("x"))
				req.Header.Set("If-None-Match", "*")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				status = resp.StatusCode
			}
			if status != tc.want {
				t.Errorf("second create-if-absent: %d, want %d", status, tc.want)
			}
		})
	}
}

func TestRefusedAndWrongSchemeEndpoints(t *testing.T) {
	srv := s3test.Start(t)
	if _, err := http.Get(s3test.RefusedEndpoint(t)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused endpoint: %v; want connection refused", err)
	}
	if _, err := http.Get(srv.WrongSchemeEndpoint() + "/" + srv.Bucket); err == nil || !strings.Contains(err.Error(), "HTTP response to HTTPS client") {
		t.Errorf("wrong scheme: %v; want a plain-HTTP answer to TLS", err)
	}
}
