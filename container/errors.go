// Package container is the worker that runs inside every AWS Batch job (and
// every local-engine subprocess): `framefleet worker render` renders one chunk
// of a stored plan and encodes it into a video segment; `framefleet worker
// stitch` joins the segments into the finished video, preview, thumbnail and
// manifest.
package container

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Exit statuses of the worker commands. AWS Batch's retryStrategy matches
// ExitTransient with evaluateOnExit {"onExitCode": "75", "action": "RETRY"};
// any other failure is permanent and should not be retried.
const (
	ExitOK        = 0
	ExitPermanent = 1
	// ExitTransient (EX_TEMPFAIL) means "try again": a store or network error,
	// or the job was stopped (SIGTERM) before it finished. The retry policy
	// lives in pipeline (DefaultRetryRules), beside this code.
	ExitTransient = pipeline.ExitTransient
)

// Error is a worker failure with the exit status the process should end with.
type Error struct {
	Code int
	Err  error
	// Detail is the tool's own explanation (Blender's error lines and the end
	// of its log), many lines long. It is kept out of Error, which is one
	// line: the worker prints that line last, where a log tail (the local
	// engine's failure reason, a CloudWatch glance) finds it. The chunk
	// report stores both (Full).
	Detail string
}

// Error is the failure on one line.
func (e *Error) Error() string { return oneLine(e.Err.Error()) }
func (e *Error) Unwrap() error { return e.Err }

// ExitCode is the process exit status (cmd/framefleet uses it).
func (e *Error) ExitCode() int { return e.Code }

// Transient reports whether err is worth retrying.
func Transient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == ExitTransient
}

// permanent marks a failure that a retry would not fix (bad scene, Blender error, missing frame).
func permanent(format string, args ...any) error {
	return &Error{Code: ExitPermanent, Err: fmt.Errorf(format, args...)}
}

// classify wraps an error from the store or the context: a missing object is
// permanent (the inputs are not there), and so is an S3 answer the same
// request would get again (AccessDenied, NoSuchBucket, …: store.IsPermanent),
// so a misconfiguration fails a chunk at once instead of burning every
// attempt; anything else is transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Code: ExitPermanent, Err: err}
	}
	if store.IsPermanent(err) {
		var hint *store.HintError
		if errors.As(err, &hint) && hint.Kind == store.HintCredentials {
			// In a Batch job the credentials are the job role's, or, when the
			// job definition has none, the instance role's.
			err = fmt.Errorf("%w: S3 refused the worker's credentials, which come from the job's job role "+
				"(batch.job_role_arn, the deploy/ stack's JobRoleArn; without one, the instance role, which may not use the bucket): "+
				"the job role must allow s3:GetObject, s3:PutObject, s3:PutObjectTagging and s3:ListBucket on the store; fix it and run `framefleet setup`", err)
		}
		return &Error{Code: ExitPermanent, Err: err}
	}
	return &Error{Code: ExitTransient, Err: err}
}

// stopped wraps err as transient when ctx was cancelled (SIGTERM from Batch
// on a Spot reclaim or timeout), whatever the underlying error says.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &Error{Code: ExitTransient, Err: fmt.Errorf("stopped before finishing (%v): %w", context.Cause(ctx), err)}
	}
	return err
}

// Full is err's message followed by its Detail, for the chunk report.
func Full(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Detail != "" {
		return err.Error() + "\n" + e.Detail
	}
	return err.Error()
}

// oneLine joins the non-empty lines of s with " | ".
func oneLine(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, " | ")
}

// asError makes sure err is an *Error at the top, so its message is one line.
func asError(err error) error {
	var e *Error
	if err == nil {
		return nil
	}
	if top, ok := err.(*Error); ok {
		return top
	}
	code := ExitPermanent
	if errors.As(err, &e) {
		code = e.Code
	}
	return &Error{Code: code, Err: err}
}
