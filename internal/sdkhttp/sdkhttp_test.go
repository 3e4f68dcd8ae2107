package sdkhttp_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/sdkhttp"
)

func TestWatchedEndsStalledAttempts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/no-headers":
			<-release
		case "/stalled-body":
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("12345"))
			w.(http.Flusher).Flush()
			<-release
		default:
			_, _ = io.WriteString(w, "whole answer")
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the held handlers
	var answers int
	c := sdkhttp.Watched(srv.Client(), 200*time.Millisecond, func(*http.Response) { answers++ })
	get := func(path string) (string, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	if body, err := get("/ok"); err != nil || body != "whole answer" {
		t.Fatalf("a server that answers: %q, %v", body, err)
	}
	for _, path := range []string{"/no-headers", "/stalled-body"} {
		_, err := get(path)
		var stall *sdkhttp.StallError
		if !errors.As(err, &stall) || !strings.Contains(stall.URL, path) {
			t.Errorf("%s: %v; want a *sdkhttp.StallError naming the request", path, err)
		}
		var timeout interface{ Timeout() bool }
		if !errors.As(err, &timeout) || !timeout.Timeout() {
			t.Errorf("%s: %v is not a timeout, so the SDK would not retry it", path, err)
		}
	}
	if answers != 2 { // /ok and /stalled-body sent headers
		t.Errorf("%d answers noted, want 2", answers)
	}
}
