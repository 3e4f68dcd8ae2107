package githubtest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// recorder keeps the server's complaints instead of failing the test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestRequestsAreValidated: requests that GitHub's OpenAPI description
// does not allow are refused and fail the test; conforming ones are served.
func TestRequestsAreValidated(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		wantErr                  string // "" = served
	}{
		{"status", "POST", "/repos/o/r/statuses/0123abcd", `{"state":"pending","context":"framefleet/a.blend"}`, ""},
		{"bad status state", "POST", "/repos/o/r/statuses/0123abcd", `{"state":"running","context":"x"}`, "value is not one of the allowed values"},
		{"comment without body", "POST", "/repos/o/r/issues/3/comments", `{"text":"hi"}`, "body"},
		{"undeclared query parameter", "GET", "/repos/o/r/pulls/3/files?per_page=100&sort=name", "", `query parameter "sort" is not declared`},
		{"wrong type", "GET", "/repos/o/r/pulls/three/files", "", "pull_number"},
		{"no such operation", "PUT", "/repos/o/r/issues/comments/5", `{"body":"x"}`, "no such operation"},
		{"wrong token", "GET", "/user", "", "want the action's token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			s := New(rec, "tok")
			s.Login = "octocat"
			req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.name != "wrong token" {
				req.Header.Set("Authorization", "Bearer tok")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := strings.Join(rec.errs, "\n")
			if tc.wantErr == "" {
				if got != "" || resp.StatusCode >= 300 {
					t.Fatalf("conforming request refused (%d): %s", resp.StatusCode, got)
				}
				return
			}
			if !strings.Contains(got, tc.wantErr) || resp.StatusCode < 400 {
				t.Fatalf("answered %d, complaints %q: want one containing %q", resp.StatusCode, got, tc.wantErr)
			}
		})
	}
}
