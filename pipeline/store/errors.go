package store

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// HintKind says which likely fix a HintError carries, so a front-end can
// word it in its own terms (a flag, a workflow input, a chat reply).
type HintKind string

// The fixes a HintError may suggest.
const (
	// HintPathStyle: the S3-compatible server needs path-style addressing;
	// Setting is "s3.path_style" and Value "true".
	HintPathStyle HintKind = "path_style"
	// HintCredentials: S3 refused the credentials or their permissions
	// (403). The fix lies in the AWS credentials in use (profile,
	// environment keys, the role a workflow assumes, a job role), so Setting
	// is empty.
	HintCredentials HintKind = "credentials"
	// HintEndpoint: nothing answers at the endpoint (a refused connection,
	// a name that does not resolve); Setting is "s3.endpoint".
	HintEndpoint HintKind = "endpoint"
	// HintScheme: the endpoint's scheme does not match the server (https
	// on a plain-HTTP port); Setting is "s3.endpoint" and Value, when
	// known, the endpoint with the other scheme.
	HintScheme HintKind = "scheme"
)

// HintError is a store failure that has a likely fix. Err is the failure
// itself; Hint says the fix in words that name no front-end's flags.
type HintError struct {
	Kind HintKind
	// Setting is the configuration key (see pipeline/config.Keys) whose
	// value likely needs to change, and Value the value to try; both are
	// empty when the fix is not a framefleet setting.
	Setting, Value string
	Hint           string
	Err            error
	// FirstContact: the store had not answered once in this process, so
	// the failure was taken for a configuration mistake and reported at
	// once instead of being retried as an outage (Options.FailFast).
	FirstContact bool
}

func (e *HintError) Error() string { return e.Err.Error() + " (" + e.Hint + ")" }
func (e *HintError) Unwrap() error { return e.Err }

// hint returns err wrapped in a HintError when its cause has a known likely
// fix, else err unchanged.
func (s *S3) hint(err error) error {
	if s.failFast && !s.answered.Load() {
		if h := s.firstContactHint(err); h != nil {
			h.FirstContact = true
			return h
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if h := s.pathStyleHint(err, dnsErr); h != nil {
			return h
		}
	}
	if isAccessDenied(err) {
		return &HintError{
			Kind: HintCredentials,
			Hint: fmt.Sprintf("S3 refused the request (403): check that the AWS credentials in use are the intended ones "+
				"and that they may read and write s3://%s", s.bucket),
			Err: err,
		}
	}
	return err
}

// pathStyleHint explains a failed lookup of the name virtual-host
// addressing makes on a custom endpoint; nil for any other name.
func (s *S3) pathStyleHint(err error, dnsErr *net.DNSError) *HintError {
	if s.endpoint == "" || s.pathStyle {
		return nil
	}
	// The SDK addresses a bucket as <bucket>.<endpoint host> unless told
	// to use paths (or the host is an IP address); most S3-compatible
	// servers have no such names.
	if u, perr := url.Parse(s.endpoint); perr == nil && dnsErr.Name == s.bucket+"."+u.Hostname() {
		return &HintError{
			Kind: HintPathStyle, Setting: "s3.path_style", Value: "true",
			Hint: fmt.Sprintf("the name %s, which virtual-host addressing makes from bucket %q and endpoint %s, does not resolve: "+
				"S3-compatible servers usually need path-style addressing (s3.path_style: true)", dnsErr.Name, s.bucket, s.endpoint),
			Err: err,
		}
	}
	return nil
}

// isAccessDenied reports whether S3 answered 403: refused credentials or
// missing permissions, except a clock skew the SDK corrects by itself.
func isAccessDenied(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem", "InvalidToken":
			return true
		case "RequestTimeTooSkewed", "ExpiredToken", "TokenRefreshRequired":
			return false
		}
	}
	var respErr *awshttp.ResponseError
	return errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusForbidden
}

// IsPermanent reports whether err carries an S3 answer that the same request
// with the same configuration would get again, so retrying cannot help and
// the failure should be reported at once (a worker exits as permanent rather
// than burning every attempt):
//
//   - refused credentials or permissions: AccessDenied, InvalidAccessKeyId,
//     SignatureDoesNotMatch, InvalidToken, AllAccessDisabled, AccountProblem,
//     and any other 403;
//
//   - a bucket that does not exist or cannot exist: NoSuchBucket,
//     InvalidBucketName;
//
//   - a bucket in another region: PermanentRedirect, AuthorizationHeaderMalformed;
//
//   - requests S3 refuses by their shape: InvalidArgument, InvalidRequest,
//     KeyTooLongError, EntityTooLarge, MethodNotAllowed, NotImplemented,
//     InvalidObjectState (an archived object).
//
//   - a configuration mistake found before the store ever answered (a
//     *HintError with FirstContact: a refused connection, an unknown name,
//     TLS against a plain-HTTP port).
//
// Not permanent, because a retry can succeed: 5xx and throttling answers,
// calls that got no answer in time (ErrTimeout),
// RequestTimeout, RequestTimeTooSkewed (the SDK corrects its clock),
// ExpiredToken (credential providers refresh), connection and DNS failures,
// cancelled contexts, and ErrConflict (re-read and write again).
//
// A missing key (ErrNotFound, NoSuchKey) is not reported as permanent either:
// whether absence is final depends on what the caller waits for (a frame
// another worker has yet to store appears later), so callers test
// errors.Is(err, ErrNotFound) and decide.
func IsPermanent(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return false
	}
	if isAccessDenied(err) {
		return true
	}
	var hint *HintError
	if errors.As(err, &hint) && hint.FirstContact {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchBucket", "InvalidBucketName",
			"PermanentRedirect", "AuthorizationHeaderMalformed",
			"InvalidArgument", "InvalidRequest", "KeyTooLongError", "EntityTooLarge",
			"MethodNotAllowed", "NotImplemented", "InvalidObjectState":
			return true
		}
	}
	return false
}
