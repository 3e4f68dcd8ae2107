package action

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Clock tells the time and waits; tests inject one that does not really wait.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// GitHub's limits (docs "Rate limits for the REST API").
const (
	// mutationGap spaces content-creating requests: GitHub allows 80 a
	// minute, and bursts trip the secondary limit sooner.
	mutationGap = time.Second
	// secondaryDefaultWait is GitHub's advice when a secondary-limit answer
	// names no time: "wait for at least one minute".
	secondaryDefaultWait = time.Minute
	// maxRateLimitWait is the longest wait the action accepts; a primary
	// limit resetting later fails the request instead of idling the runner.
	maxRateLimitWait    = 15 * time.Minute
	maxRateLimitRetries = 5
)

// RateLimitTransport paces GitHub API mutations and waits out rate-limit
// answers as Retry-After / x-ratelimit-reset say, then retries.
type RateLimitTransport struct {
	Base   http.RoundTripper
	Clock  Clock
	Logger *slog.Logger

	mu           sync.Mutex
	nextMutation time.Time
}

// NewRateLimitTransport wraps base (nil: http.DefaultTransport's settings,
// with a minute for GitHub to answer each request: a client timeout would
// also cut the waits for rate limits short).
func NewRateLimitTransport(base http.RoundTripper, clock Clock, log *slog.Logger) *RateLimitTransport {
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		base = t
	}
	return &RateLimitTransport{Base: base, Clock: clock, Logger: log}
}

func (t *RateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			if err := t.pace(ctx); err != nil {
				return nil, err
			}
		}
		r := req
		if attempt > 0 {
			r = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("replay the request body: %w", err)
				}
				r.Body = body
			}
		}
		resp, err := t.Base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		wait, limited := t.rateLimitWait(resp)
		if !limited || attempt >= maxRateLimitRetries || wait > maxRateLimitWait || (req.Body != nil && req.GetBody == nil) {
			return resp, nil
		}
		t.Logger.Warn("GitHub rate limit: waiting before retrying", "method", req.Method, "path", req.URL.Path, "wait", wait, "attempt", attempt+1)
		// Drain so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if err := t.Clock.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// pace holds a mutation until mutationGap after the previous one.
func (t *RateLimitTransport) pace(ctx context.Context) error {
	t.mu.Lock()
	now := t.Clock.Now()
	at := t.nextMutation
	if at.Before(now) {
		at = now
	}
	t.nextMutation = at.Add(mutationGap)
	t.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		return t.Clock.Sleep(ctx, d)
	}
	return nil
}

// rateLimitWait says whether resp is a rate-limit answer and how long to
// wait: Retry-After, else until x-ratelimit-reset when nothing remains,
// else a minute for a secondary limit that names no time.
func (t *RateLimitTransport) rateLimitWait(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	h := resp.Header
	if ra := h.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if at, err := http.ParseTime(ra); err == nil {
			return max(at.Sub(t.Clock.Now()), 0), true
		}
	}
	if h.Get("X-Ratelimit-Remaining") == "0" {
		if s, err := strconv.ParseInt(h.Get("X-Ratelimit-Reset"), 10, 64); err == nil {
			// One second more: the reset is rounded down to whole seconds.
			return max(time.Unix(s, 0).Sub(t.Clock.Now()), 0) + time.Second, true
		}
	}
	// A secondary limit without headers: GitHub's message says so.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err == nil && strings.Contains(strings.ToLower(string(body)), "secondary rate limit") {
		return secondaryDefaultWait, true
	}
	return 0, false
}
