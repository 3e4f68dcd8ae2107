// Package sdkhttp holds the HTTP client wrapper every AWS SDK client in
// framefleet uses.
package sdkhttp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Client wraps next (http.DefaultClient when nil) to work around smithy-go
// closing a request's body as soon as the response headers arrive: the body's
// WriteTo then returns io.EOF, which net/http, still finishing the request
// write, takes for a failed write and closes the connection while the
// response body is being read ("use of closed network connection"). It shows
// against servers that answer within microseconds (test servers on loopback)
// with responses larger than one read. Hiding WriteTo makes the transport use
// Read, which reports a clean EOF.
func Client(next aws.HTTPClient) aws.HTTPClient {
	if next == nil {
		next = http.DefaultClient
	}
	return readOnlyBodyClient{next}
}

type readOnlyBodyClient struct{ next aws.HTTPClient }

type readOnlyBody struct{ io.ReadCloser }

func (c readOnlyBodyClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = readOnlyBody{r.Body}
	}
	return c.next.Do(r)
}

// StallError is an attempt the watchdog of Watched ended: no byte moved in
// either direction for its stall timeout (a server that accepts a
// connection and then never answers, or stops mid-transfer). It is a
// timeout, so the SDK's retryer treats it as retryable.
type StallError struct {
	Method, URL string
	After       time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s %s: no answer and no progress for %s", e.Method, e.URL, e.After)
}

// Timeout marks the error as a timeout (net.Error, and the SDK's retry checks).
func (e *StallError) Timeout() bool { return true }

// Temporary marks the error as worth retrying.
func (e *StallError) Temporary() bool { return true }

// Watched wraps next so that an attempt in which no byte of the request
// body is read and no byte of the response arrives for stall ends with a
// *StallError instead of waiting forever. Progress in either direction
// restarts the clock, so a large transfer that keeps moving is never cut
// off. The attempt's own context is cancelled, not the caller's: the SDK
// sees a failed attempt and may retry it. answered, when not nil, is called
// with every response that arrives (any status).
func Watched(next aws.HTTPClient, stall time.Duration, answered func(*http.Response)) aws.HTTPClient {
	return watchedClient{next: Client(next), stall: stall, answered: answered}
}

type watchedClient struct {
	next     aws.HTTPClient
	stall    time.Duration
	answered func(*http.Response)
}

// watchdog cancels an attempt when its timer runs out; progress resets it.
type watchdog struct {
	timer  *time.Timer
	stall  time.Duration
	cancel context.CancelFunc
	mu     sync.Mutex
	fired  bool
	done   bool
}

func (w *watchdog) fire() {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.fired = true
	w.mu.Unlock()
	w.cancel()
}

func (w *watchdog) progress() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && !w.fired {
		w.timer.Reset(w.stall)
	}
}

// stop ends the watch and reports whether it had fired.
func (w *watchdog) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.timer.Stop()
	return w.fired
}

func (w *watchdog) hasFired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired
}

type progressBody struct {
	io.ReadCloser
	w *watchdog
}

func (b progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.progress()
	}
	return n, err
}

type watchedBody struct {
	io.ReadCloser
	w   *watchdog
	err *StallError
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.progress()
	}
	if err != nil && err != io.EOF && b.w.hasFired() {
		return n, b.err
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.w.stop()
	b.w.cancel()
	return b.ReadCloser.Close()
}

func (c watchedClient) Do(r *http.Request) (*http.Response, error) {
	if c.stall <= 0 {
		resp, err := c.next.Do(r)
		if err == nil && c.answered != nil {
			c.answered(resp)
		}
		return resp, err
	}
	ctx, cancel := context.WithCancel(r.Context())
	w := &watchdog{stall: c.stall, cancel: cancel}
	w.mu.Lock()
	w.timer = time.AfterFunc(c.stall, w.fire)
	w.mu.Unlock()
	r = r.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = progressBody{r.Body, w}
	}
	stallErr := &StallError{Method: r.Method, URL: r.URL.Scheme + "://" + r.URL.Host + r.URL.Path, After: c.stall}
	resp, err := c.next.Do(r)
	if err != nil {
		fired := w.stop()
		cancel()
		if fired {
			return nil, stallErr
		}
		return nil, err
	}
	if c.answered != nil {
		c.answered(resp)
	}
	w.progress() // the headers arrived
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w, err: stallErr}
	return resp, nil
}
