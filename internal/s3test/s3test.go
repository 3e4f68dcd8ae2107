// Package s3test runs a real S3 protocol server (gofakes3 with its in-memory
// backend) on loopback for tests, with optional fault injection.
//
// Typical use:
//
//	srv := s3test.Start(t)                       // bucket s3test.DefaultBucket exists
//	st, err := store.NewS3(ctx, srv.Bucket, "prefix", store.Options{
//		Region:       srv.Region,
//		Endpoint:     srv.Endpoint,
//		UsePathStyle: true,
//		Credentials:  srv.Credentials(),
//	})
//
//	srv := s3test.Start(t, s3test.WithFaults(0.2, 1)) // 20% of requests fail with 500/503
//	srv := s3test.Start(t, s3test.WithFaults(1, 1, 403)) // every request: 403 AccessDenied
//
//	srv.Down() ... srv.Up()                      // refuse connections for a while (an outage)
//	srv.DownFor(3 * time.Second)                // the same, back on its own
//	srv.Hang() ... srv.Resume()                 // accept connections, never answer (a frozen server)
//	srv.HangFor(3 * time.Second)                // the same, answering again on its own
//	s3test.Start(t, s3test.WithoutConditionalWrites()) // drops If-None-Match / If-Match
//	s3test.RefusedEndpoint(t), srv.WrongSchemeEndpoint() // configuration mistakes
//
// PutObject honours If-None-Match "*" and If-Match <etag> as S3 does (412
// PreconditionFailed, the object untouched): gofakes3 checks the condition
// under the same lock as the write since v1.2.0, and TestConditionalPutIsEnforced
// keeps that promise checked if gofakes3 is upgraded.
//
// Clients must use path-style addressing and static credentials (any keys
// are accepted). The server is closed by t.Cleanup.
package s3test

import (
	"fmt"
	"html"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Defaults used by Start.
const (
	DefaultBucket = "framefleet-test"
	Region        = "us-east-1"
	AccessKeyID   = "AKIDS3TEST"
	SecretKey     = "s3test-secret"
)

// Request is one request the server answered.
type Request struct {
	Method string
	Path   string // URL path, e.g. /framefleet-test/runs/x/plan.json
	Query  url.Values
	Status int  // the status the fault injector sent; 0 when gofakes3 answered
	Fault  bool // answered by the fault injector, not by gofakes3
	Held   bool // arrived while the server hung
}

// IsUploadPart reports whether r uploaded one part of a multipart upload.
func (r Request) IsUploadPart() bool {
	return r.Method == http.MethodPut && r.Query.Has("uploadId") && r.Query.Has("partNumber")
}

// IsCreateMultipartUpload reports whether r started a multipart upload.
func (r Request) IsCreateMultipartUpload() bool {
	return r.Method == http.MethodPost && r.Query.Has("uploads")
}

// Server is a running fake S3.
type Server struct {
	// Endpoint is the base URL with scheme, e.g. http://127.0.0.1:41234;
	// pass it as the SDK's BaseEndpoint (store.Options.Endpoint).
	Endpoint string
	// Bucket was created at start.
	Bucket string
	// Region is the region clients should sign for.
	Region string
	// Backend is the in-memory storage, for direct inspection or seeding.
	Backend *s3mem.Backend

	t       testing.TB
	addr    string       // host:port, kept across Down and Up
	handler http.Handler // the fault injector in front of gofakes3

	mu        sync.Mutex
	http      *http.Server // nil while down
	closed    bool         // the test ended: stay down
	rng       *rand.Rand
	faultRate float64
	statuses  []int
	requests  []Request
	hung      chan struct{} // non-nil while hung: closed by Resume
	ignoreIf  bool          // drop conditional headers
}

type settings struct {
	bucket    string
	faultRate float64
	seed      int64
	statuses  []int
	ignoreIf  bool
}

// Option configures Start.
type Option func(*settings)

// WithBucket names the bucket created at start (default DefaultBucket).
func WithBucket(name string) Option { return func(s *settings) { s.bucket = name } }

// WithFaults makes the server answer a fraction (0..1) of requests with an
// S3 error instead of passing them on, choosing among statuses (default 500
// InternalError and 503 SlowDown; 403 AccessDenied may be asked for) with a rand seeded by seed, so a run is
// repeatable for the same request order.
func WithFaults(rate float64, seed int64, statuses ...int) Option {
	return func(s *settings) {
		s.faultRate, s.seed = rate, seed
		if len(statuses) > 0 {
			s.statuses = statuses
		}
	}
}

// WithoutConditionalWrites makes the server ignore If-None-Match and
// If-Match on writes, as some S3-compatible servers and gateways do: every
// conditional write succeeds and overwrites.
func WithoutConditionalWrites() Option { return func(s *settings) { s.ignoreIf = true } }

// Start runs a fake S3 server on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := settings{bucket: DefaultBucket, seed: 1, statuses: []int{http.StatusInternalServerError, http.StatusServiceUnavailable}}
	for _, o := range opts {
		o(&cfg)
	}
	for _, st := range cfg.statuses {
		if _, ok := faultCodes[st]; !ok {
			t.Fatalf("s3test: cannot inject status %d: use 500, 503 or 403", st)
		}
	}
	backend := s3mem.New()
	if err := backend.CreateBucket(cfg.bucket); err != nil {
		t.Fatalf("s3test: create bucket %q: %v", cfg.bucket, err)
	}
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false))
	s := &Server{
		Bucket:    cfg.bucket,
		Region:    Region,
		Backend:   backend,
		t:         t,
		rng:       rand.New(rand.NewSource(cfg.seed)),
		faultRate: cfg.faultRate,
		statuses:  cfg.statuses,
		ignoreIf:  cfg.ignoreIf,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.handler = s.wrap(faker.Server())
	s.serve(ln)
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closed = true
		if s.hung != nil {
			close(s.hung)
			s.hung = nil
		}
		if s.http != nil {
			s.http.Close()
			s.http = nil
		}
	})
	s.Endpoint = "http://" + s.addr
	return s
}

// serve answers on ln until Down or the end of the test; s.mu must not be
// held by another caller changing s.http.
func (s *Server) serve(ln net.Listener) {
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.http = hs
	go func() { _ = hs.Serve(ln) }()
}

// Down makes the server unreachable, as if its process died: the listener
// and every open connection are closed, so new connections are refused and
// requests in flight fail. Up brings it back on the same address with the
// same objects. Down on a server that is down does nothing.
func (s *Server) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http == nil {
		return
	}
	s.http.Close()
	s.http = nil
}

// Up listens again on the address Down gave up. If the address cannot be
// taken back (another program took the port meanwhile) the test fails with
// Errorf, so Up may be called from any goroutine.
func (s *Server) Up() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil || s.closed {
		return
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; the kernel may take a moment to let go.
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Errorf("s3test: listen again on %s: %v", s.addr, err)
		return
	}
	s.serve(ln)
}

// DownFor calls Down now and Up after d, without blocking the caller: an
// outage in the middle of whatever the test does next.
func (s *Server) DownFor(d time.Duration) {
	s.Down()
	time.AfterFunc(d, s.Up)
}

// Hang makes the server accept connections and read requests but never
// answer them, as a frozen process (SIGSTOP) does, until Resume; requests
// held meanwhile are then answered, as a resumed process would. Hang on a
// hung server does nothing.
func (s *Server) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hung == nil && !s.closed {
		s.hung = make(chan struct{})
	}
}

// Resume ends a Hang.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hung != nil {
		close(s.hung)
		s.hung = nil
	}
}

// HangFor calls Hang now and Resume after d, without blocking the caller.
func (s *Server) HangFor(d time.Duration) {
	s.Hang()
	time.AfterFunc(d, s.Resume)
}

// Held returns how many requests arrived while the server hung.
func (s *Server) Held() int { return s.Count(func(r Request) bool { return r.Held }) }

// WrongSchemeEndpoint is the server's endpoint with https instead of http:
// the TLS handshake meets a plain-HTTP server.
func (s *Server) WrongSchemeEndpoint() string { return "https://" + s.addr }

// RefusedEndpoint is an http endpoint on a loopback port where nothing
// listens (the port was taken and let go, so connections are refused).
func RefusedEndpoint(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// IsDown reports whether the server refuses connections (after Down, before Up).
func (s *Server) IsDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.http == nil
}

// Credentials returns static credentials the server accepts.
func (s *Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKeyID, SecretKey, "")
}

// WorkerEnv is the environment another process (a worker, as a container
// would run it) needs to reach this server with the SDK's own settings.
func (s *Server) WorkerEnv() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_S3":       s.Endpoint,
		"AWS_ACCESS_KEY_ID":         AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":     SecretKey,
		"AWS_REGION":                s.Region,
		"AWS_EC2_METADATA_DISABLED": "true",
	}
}

// SetFaultRate changes the fraction of requests that fail from now on.
func (s *Server) SetFaultRate(rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultRate = rate
}

// Requests returns every request answered so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests so far match.
func (s *Server) Count(match func(Request) bool) int {
	n := 0
	for _, r := range s.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

// Faults returns how many requests the fault injector answered.
func (s *Server) Faults() int { return s.Count(func(r Request) bool { return r.Fault }) }

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

var faultCodes = map[int]struct{ code, message string }{
	http.StatusInternalServerError: {"InternalError", "We encountered an internal error. Please try again."},
	http.StatusServiceUnavailable:  {"SlowDown", "Please reduce your request rate."},
	// As S3 answers credentials without the bucket's permissions.
	http.StatusForbidden: {"AccessDenied", "Access Denied"},
}

func (s *Server) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
		if s.faultRate > 0 && s.rng.Float64() < s.faultRate {
			req.Fault = true
			req.Status = s.statuses[s.rng.Intn(len(s.statuses))]
		}
		hung := s.hung
		req.Held = hung != nil
		ignoreIf := s.ignoreIf
		s.requests = append(s.requests, req)
		id := len(s.requests)
		s.mu.Unlock()

		if hung != nil {
			<-hung
		}
		if ignoreIf {
			r.Header.Del("If-None-Match")
			r.Header.Del("If-Match")
		}

		if !req.Fault {
			next.ServeHTTP(w, r)
			return
		}
		// Drain the body so the client's connection stays usable.
		_, _ = io.Copy(io.Discard, r.Body)
		fc := faultCodes[req.Status]
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(req.Status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>s3test-fault-%d</RequestId></Error>`,
				fc.code, fc.message, html.EscapeString(r.URL.Path), id)
		}
	})
}
