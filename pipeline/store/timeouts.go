package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/framefleet/framefleet/internal/sdkhttp"
)

// Timeouts bound the S3 store's calls. The defaults are chosen around the
// run's host lease (30 s, renewed every 10 s) and outage budget (5 min): a
// metadata call (a record read or write, a listing) returns within Call,
// so a renewal that cannot get through fails in time for the next one
// before the lease lapses, and every failed call hands control back to the
// outage loop, which waits, says so, and gives up when the budget is spent.
type Timeouts struct {
	// Connect bounds a connection: name lookup, TCP and TLS handshake.
	Connect time.Duration
	// ResponseHeader bounds one attempt from the request written to the
	// response's headers.
	ResponseHeader time.Duration
	// Call bounds a whole metadata call (Stat, List, ListPage, Delete,
	// GetVersioned, PutIfVersion, and Get until its body starts), the SDK's
	// retries included.
	Call time.Duration
	// Stall ends a transfer attempt (Put, PutFile, GetFile, reading a Get)
	// in which no byte moved for this long; a transfer that keeps moving
	// is never cut off, whatever its size.
	Stall time.Duration
}

// Default timeouts.
const (
	DefaultConnectTimeout        = 5 * time.Second
	DefaultResponseHeaderTimeout = 15 * time.Second
	DefaultCallTimeout           = 10 * time.Second
	DefaultStallTimeout          = 30 * time.Second
)

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = DefaultConnectTimeout
	}
	if t.ResponseHeader <= 0 {
		t.ResponseHeader = DefaultResponseHeaderTimeout
	}
	if t.Call <= 0 {
		t.Call = DefaultCallTimeout
	}
	if t.Stall <= 0 {
		t.Stall = DefaultStallTimeout
	}
	return t
}

// ErrTimeout is matched (errors.Is) by a store call that got no answer in
// time: a hung or overloaded server. It is an outage, not a permanent
// failure: retry it under an outage budget.
var ErrTimeout = errors.New("the store did not answer in time")

// TimeoutError is a call that ran out of time. It deliberately does not
// wrap context.DeadlineExceeded: the caller's context did not end, so
// callers that stop on their own deadline must not stop on this one.
type TimeoutError struct {
	Op, Where string
	After     time.Duration
	Last      string // the last failure seen, if any
}

func (e *TimeoutError) Error() string {
	msg := fmt.Sprintf("%s %s: no answer in time", e.Op, e.Where)
	if e.After > 0 {
		msg = fmt.Sprintf("%s %s: no answer within %s", e.Op, e.Where, e.After)
	}
	if e.Last != "" {
		msg += " (" + e.Last + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// errCallDeadline is the cause of a call's own deadline.
var errCallDeadline = errors.New("store call deadline")

// httpClient is the SDK's own buildable client (so AWS_CA_BUNDLE and the
// like still apply) with connect and response-header timeouts.
func (s *S3) httpClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = s.timeouts.Connect }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = s.timeouts.Connect
			tr.ResponseHeaderTimeout = s.timeouts.ResponseHeader
		})
}

// watch wraps the client the SDK uses with a stall watchdog on every
// attempt and a note of every answer.
func (s *S3) watch(next aws.HTTPClient) aws.HTTPClient {
	return sdkhttp.Watched(next, s.timeouts.Stall, func(resp *http.Response) {
		if answeredBy(resp) {
			s.answered.Store(true)
		}
	})
}

// answeredBy reports whether resp shows a working S3 server at the
// endpoint: any answer but a refused signature or credentials (a
// configuration mistake) and a plain-HTTP server's complaint about a TLS
// client (or the reverse).
func answeredBy(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusForbidden, http.StatusBadRequest:
		return false
	}
	return true
}

// Answered reports whether the store has answered at least once in this
// process (after which connection failures count as outages).
func (s *S3) Answered() bool { return s.answered.Load() }

// bounded returns ctx with the call deadline; expired reports whether the
// call's own deadline (not the caller's) ended it.
func (s *S3) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.timeouts.Call, errCallDeadline)
}

// finish maps a call's error (call is the context the call ran under,
// parent the caller's): while the caller's context lives, every timeout in
// err is one of the store's own (the call deadline, the transport's
// response-header or connect timeout, a stall) and becomes a *TimeoutError,
// which is an outage; net/http's header timeout would otherwise match
// context.DeadlineExceeded and pass for the caller's own deadline. Anything
// else goes through wrap.
func (s *S3) finish(parent, call context.Context, op, key string, err error) error {
	if err == nil || parent.Err() != nil || isNotFound(err) || isConflict(err) {
		if err == nil {
			return nil
		}
		return s.wrap(op, key, err)
	}
	where := s.URI() + "/" + key
	var stall *sdkhttp.StallError
	var netErr net.Error
	switch {
	case errors.Is(context.Cause(call), errCallDeadline):
		return &TimeoutError{Op: op, Where: where, After: s.timeouts.Call, Last: lastCause(err)}
	case errors.As(err, &stall):
		return &TimeoutError{Op: op, Where: where, After: stall.After, Last: lastCause(err)}
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return &TimeoutError{Op: op, Where: where, Last: lastCause(err)}
	}
	return s.wrap(op, key, err)
}

// lastCause is the innermost useful text of an SDK error.
func lastCause(err error) string {
	var stall *sdkhttp.StallError
	if errors.As(err, &stall) {
		return stall.Error()
	}
	var opErr *smithy.OperationError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	return err.Error()
}

// noSDKRetry reports failures a front-end's store (FailFast) hands back at
// once instead of letting the SDK retry them for minutes: a configuration
// mistake before the store ever answered, and a server that is not there
// (a refused connection, a name that does not resolve) or does not answer
// (a timeout, a stall), which the caller's outage loop retries while
// telling the person it waits. A connection reset mid-transfer and answers
// such as 503 SlowDown are still retried by the SDK: the server is there,
// and a large upload should not start over.
func (s *S3) noSDKRetry(err error) bool {
	if !s.failFast {
		return false
	}
	if !s.answered.Load() && s.firstContactHint(err) != nil {
		return true
	}
	var sendErr *smithyhttp.RequestSendError
	if !errors.As(err, &sendErr) {
		return false
	}
	var stall *sdkhttp.StallError
	var dnsErr *net.DNSError
	var netErr net.Error
	return errors.As(err, &stall) || errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dnsErr) ||
		errors.As(err, &netErr) && netErr.Timeout()
}

// firstContactHint explains a failure that, before the store has ever
// answered in this process, is a configuration mistake rather than an
// outage; nil when err is not one.
func (s *S3) firstContactHint(err error) *HintError {
	endpoint := s.endpoint
	if endpoint == "" {
		endpoint = "AWS S3"
	}
	var recErr tls.RecordHeaderError
	// net/http reports a plain-HTTP answer to its TLS handshake in words only.
	if errors.As(err, &recErr) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		h := &HintError{Kind: HintScheme, Setting: "s3.endpoint", Err: err,
			Hint: fmt.Sprintf("%s answered a TLS handshake with something that is not TLS: the server speaks plain HTTP there: use an http:// endpoint", endpoint)}
		if u, perr := url.Parse(s.endpoint); perr == nil && u.Scheme == "https" {
			u.Scheme = "http"
			h.Value = u.String()
			h.Hint = fmt.Sprintf("%s answered a TLS handshake with something that is not TLS: the server speaks plain HTTP on that port: use s3.endpoint %s", s.endpoint, u.String())
		}
		return h
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if h := s.pathStyleHint(err, dnsErr); h != nil {
			return h
		}
		return &HintError{Kind: HintEndpoint, Setting: "s3.endpoint", Err: err,
			Hint: fmt.Sprintf("the name %s does not resolve: check the host name in s3.endpoint (%s) and the network", dnsErr.Name, endpoint)}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return &HintError{Kind: HintEndpoint, Setting: "s3.endpoint", Err: err,
			Hint: fmt.Sprintf("nothing accepts connections at %s: check the host and port in s3.endpoint, and that the server runs", endpoint)}
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "SignatureDoesNotMatch" {
		if s.endpoint != "" && !s.pathStyle {
			return &HintError{Kind: HintPathStyle, Setting: "s3.path_style", Value: "true", Err: err,
				Hint: fmt.Sprintf("%s refused the request's signature, made for virtual-host addressing (bucket %q in the host name): "+
					"S3-compatible servers usually need path-style addressing (s3.path_style: true)", s.endpoint, s.bucket)}
		}
		return &HintError{Kind: HintCredentials, Err: err,
			Hint: "S3 refused the request's signature: check the secret key of the AWS credentials in use and the region"}
	}
	return nil
}
