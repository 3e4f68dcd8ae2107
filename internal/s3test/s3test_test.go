package s3test_test

import (
	"encoding/xml"
	"io"
	"net/http"
	"testing"

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
