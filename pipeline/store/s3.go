package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Limits and defaults of the S3 store.
const (
	// MaxLinkExpiry is the longest a SigV4 presigned URL may live.
	MaxLinkExpiry = 7 * 24 * time.Hour
	// DefaultLinkExpiry is used when neither Link nor Options give one.
	DefaultLinkExpiry = 24 * time.Hour
	// DefaultMaxAttempts is how often one S3 call is tried by default.
	DefaultMaxAttempts = 8
	// MinPartSize is the smallest multipart part S3 accepts (except the last).
	MinPartSize = 5 << 20
	// DefaultPartSize is the default multipart part size.
	DefaultPartSize = 8 << 20
	// DefaultMultipartThreshold is the default size from which uploads use parts.
	DefaultMultipartThreshold = 16 << 20
	// DefaultRegion is used for custom endpoints (MinIO, gofakes3, ...) when
	// no region is configured; such servers accept any region.
	DefaultRegion = "us-east-1"
)

// S3 is a store in an S3 bucket under an optional key prefix. Uploads and
// file downloads go through the SDK's transfer manager, so large objects move
// in parallel parts; every call is retried on transient errors.
type S3 struct {
	client  *s3.Client
	presign *s3.PresignClient
	tm      *transfermanager.Client
	bucket  string
	prefix  string // no leading or trailing slash; "" is the bucket root
	expiry  time.Duration
	links   *CloudFrontSigner // nil: presigned S3 URLs
	// endpoint and pathStyle are kept to explain addressing failures.
	endpoint  string
	pathStyle bool

	timeouts Timeouts
	failFast bool
	// answered: the server answered once in this process (see Options.FailFast).
	answered atomic.Bool
}

// NewS3 opens the store s3://bucket/prefix. It does not contact S3.
func NewS3(ctx context.Context, bucket, prefix string, opts Options) (Store, error) {
	return newS3(ctx, bucket, prefix, opts)
}

func newS3(ctx context.Context, bucket, prefix string, opts Options) (*S3, error) {
	if bucket == "" || strings.ContainsAny(bucket, "/\\ ") {
		return nil, fmt.Errorf("s3 store: bucket %q is not a bucket name: use s3://bucket/prefix", bucket)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 store: prefix %q: use slash-separated names without . or .. parts", prefix)
		}
	}
	if err := CheckEndpoint(opts.Endpoint); err != nil {
		return nil, err
	}
	if opts.MaxAttempts < 0 || opts.PartSize < 0 || opts.MultipartThreshold < 0 || opts.Concurrency < 0 || opts.MaxBackoff < 0 {
		return nil, errors.New("s3 store: attempts, part size, threshold, concurrency and backoff must not be negative")
	}
	if opts.PartSize == 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.PartSize < MinPartSize {
		return nil, fmt.Errorf("s3 store: part size %d bytes is too small: S3 needs at least %d (5 MiB)", opts.PartSize, MinPartSize)
	}
	if opts.MultipartThreshold == 0 {
		opts.MultipartThreshold = max(DefaultMultipartThreshold, opts.PartSize)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	var links *CloudFrontSigner
	if opts.CloudFront.Enabled() {
		cf, err := NewCloudFrontSigner(opts.CloudFront)
		if err != nil {
			return nil, fmt.Errorf("s3 store: CloudFront links: %w", err)
		}
		links = cf
	}
	expiry := opts.PresignExpiry
	if expiry == 0 {
		expiry = DefaultLinkExpiry
	}
	if err := checkLinkExpiry(expiry, links != nil); err != nil {
		return nil, fmt.Errorf("s3 store: default link expiry: %w", err)
	}

	s := &S3{
		bucket:    bucket,
		prefix:    prefix,
		expiry:    expiry,
		links:     links,
		endpoint:  opts.Endpoint,
		pathStyle: opts.UsePathStyle,
		timeouts:  opts.Timeouts.withDefaults(),
		failFast:  opts.FailFast,
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				if opts.MaxBackoff > 0 {
					o.MaxBackoff = opts.MaxBackoff
				}
				// The client-side retry quota would give up on a burst of
				// 503 SlowDown answers long before MaxAttempts; workers
				// sharing a bucket must ride such bursts out instead.
				o.RateLimiter = ratelimit.None
				// A configuration mistake is reported at once, not retried.
				o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
					if s.noSDKRetry(err) {
						return aws.FalseTernary
					}
					return aws.UnknownTernary
				})}, o.Retryables...)
			})
		}),
		// S3-compatible servers reject the default CRC32 checksums on
		// multipart uploads (aws/aws-sdk-go-v2#3469).
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	}
	if opts.HTTPClient != nil {
		loadOpts = append(loadOpts, config.WithHTTPClient(opts.HTTPClient))
	} else {
		loadOpts = append(loadOpts, config.WithHTTPClient(s.httpClient()))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if opts.Endpoint == "" {
			return nil, errors.New("s3 store: no AWS region: set region in framefleet.yaml, AWS_REGION or --region")
		}
		cfg.Region = DefaultRegion
	}

	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.HTTPClient = s.watch(o.HTTPClient)
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.UsePathStyle
		// Ranged part downloads carry no whole-object checksum; do not log
		// a warning for every part.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = opts.PartSize
		o.MultipartUploadThreshold = opts.MultipartThreshold
		o.Concurrency = opts.Concurrency // 0: the transfer manager's default
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		// Byte ranges work on every S3-compatible server; part numbers do not.
		o.GetObjectType = tmtypes.GetObjectRanges
		o.DisableChecksumValidation = opts.Endpoint != ""
	})
	s.client, s.presign, s.tm = client, s3.NewPresignClient(client), tm
	return s, nil
}

// CheckEndpoint accepts "" (AWS itself) or an http(s) URL with a host; a
// bare host:port is rejected because the SDK cannot use it.
func CheckEndpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("s3 endpoint %q is not a URL with a scheme: use e.g. http://127.0.0.1:9000 or https://s3.example.com", endpoint)
	}
	return nil
}

// checkLinkExpiry allows CloudFront links to outlive S3's 7-day limit.
func checkLinkExpiry(d time.Duration, cloudFront bool) error {
	if !cloudFront {
		return checkExpiry(d)
	}
	if d < 0 || d > MaxCloudFrontLinkExpiry {
		return fmt.Errorf("link expiry %s is out of range: give a positive duration, at most 366 days", d)
	}
	return nil
}

func checkExpiry(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("link expiry %s is negative: give a positive duration, at most 168h (7 days)", d)
	}
	if d > MaxLinkExpiry {
		return fmt.Errorf("link expiry %s is longer than S3 presigned URLs allow (7 days = 604800 s): use at most 168h", d)
	}
	return nil
}

// Bucket is the store's bucket.
func (s *S3) Bucket() string { return s.bucket }

// Prefix is the key prefix inside the bucket ("" for the bucket root).
func (s *S3) Prefix() string { return s.prefix }

// ObjectKey is the full S3 object key of a store key.
func (s *S3) ObjectKey(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

// URI implements Store.
func (s *S3) URI() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// Put implements Store. S3 makes an object visible only once its upload
// (single or multipart) completes, so readers never see part of it.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	if err := checkKey(key); err != nil {
		return err
	}
	in := &transfermanager.UploadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.ObjectKey(key)),
		Body:   r,
	}
	if IsIntermediate(key) {
		// The bucket's lifecycle rule expires objects with this tag (deploy/framefleet.yaml):
		// lifecycle prefixes cannot say runs/*/frames/.
		in.Tagging = aws.String(RetentionTag + "=" + RetentionIntermediate)
	}
	_, err := s.tm.UploadObject(ctx, in)
	if err != nil {
		return s.finish(ctx, ctx, "upload", key, err)
	}
	return nil
}

// PutFile implements Store.
func (s *S3) PutFile(ctx context.Context, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	defer f.Close()
	return s.Put(ctx, key, f)
}

// Get implements Store. It streams one GetObject response rather than using
// the transfer manager's GetObject, whose reader busy-waits for parts.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	// The call deadline covers the request until the body starts; reading
	// the body is then watched for stalls only, however large it is.
	cctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(s.timeouts.Call, func() { cancel(errCallDeadline) })
	out, err := s.client.GetObject(cctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.ObjectKey(key)),
	})
	timer.Stop()
	if err != nil {
		cancel(nil)
		return nil, s.finish(ctx, cctx, "read", key, err)
	}
	return cancelOnClose{out.Body, func() { cancel(nil) }}, nil
}

// GetFile implements Store: parts are downloaded in parallel into a
// temporary file next to path, which is renamed over path when complete.
func (s *S3) GetFile(ctx context.Context, key, path string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	_, err = s.tm.DownloadObject(ctx, &transfermanager.DownloadObjectInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(s.ObjectKey(key)),
		WriterAt: tmp,
	})
	if err != nil {
		tmp.Close()
		return s.finish(ctx, ctx, "download", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	return nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	out, err := s.client.HeadObject(cctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.ObjectKey(key)),
	})
	if err != nil {
		return Object{}, s.finish(ctx, cctx, "stat", key, err)
	}
	return Object{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Object, error) {
	if strings.HasPrefix(prefix, "/") || slices.Contains(strings.Split(prefix, "/"), "..") {
		return nil, fmt.Errorf("invalid store prefix %q: use a relative prefix such as runs/<id>/", prefix)
	}
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.ObjectKey(prefix)),
	})
	for p.HasMorePages() {
		cctx, cancel := s.bounded(ctx)
		page, err := p.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, s.finish(ctx, cctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, Object{Key: s.storeKey(aws.ToString(o.Key)), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Link implements Store: a presigned GET URL, or a CloudFront signed URL
// when Options.CloudFront is set. expiry 0 means the store's default
// (Options.PresignExpiry); a presigned URL may live at most 7 days, since S3
// would refuse it, and also dies when the signing credentials expire
// (LinksExpireAt says when); a CloudFront URL does not.
func (s *S3) Link(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if expiry == 0 {
		expiry = s.expiry
	}
	if err := checkLinkExpiry(expiry, s.links != nil); err != nil {
		return "", fmt.Errorf("link to %s: %w", key, err)
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	if s.links != nil {
		return s.links.SignLink(s.ObjectKey(key), time.Now().Add(expiry))
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.ObjectKey(key)),
	}, s3.WithPresignExpires(expiry))
	if err != nil {
		return "", s.wrap("presign", key, err)
	}
	return req.URL, nil
}

// LinksExpireAt says when links made now with expiry stop working: for
// presigned URLs, the earlier of the expiry and the credentials' expiry.
func (s *S3) LinksExpireAt(ctx context.Context, expiry time.Duration) *time.Time {
	if expiry == 0 {
		expiry = s.expiry
	}
	at := time.Now().Add(expiry).UTC().Truncate(time.Second)
	if cp := s.client.Options().Credentials; s.links == nil && cp != nil {
		if creds, err := cp.Retrieve(ctx); err == nil && creds.CanExpire && creds.Expires.Before(at) {
			at = creds.Expires.UTC().Truncate(time.Second)
		}
	}
	return &at
}

// wrap maps "no such key" answers to ErrNotFound, names the object and
// attaches a HintError when the failure has a likely fix.
func (s *S3) wrap(op, key string, err error) error {
	where := s.URI() + "/" + key
	if isNotFound(err) {
		return fmt.Errorf("%s: %w", where, ErrNotFound)
	}
	err = s.hint(err)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket" {
		return fmt.Errorf("%s %s: bucket %q does not exist: create it or fix the store URI: %w", op, where, s.bucket, err)
	}
	return fmt.Errorf("%s %s: %w", op, where, err)
}

func isNotFound(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	var respErr *awshttp.ResponseError
	return errors.As(err, &respErr) && respErr.HTTPStatusCode() == 404
}

// cancelOnClose releases a Get's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	release func()
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.release()
	return err
}

// GetVersioned implements Store: one GetObject, whose ETag is the version.
func (s *S3) GetVersioned(ctx context.Context, key string) ([]byte, Version, error) {
	if err := checkKey(key); err != nil {
		return nil, "", err
	}
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	out, err := s.client.GetObject(cctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.ObjectKey(key)),
	})
	if err != nil {
		return nil, "", s.finish(ctx, cctx, "read", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", s.finish(ctx, cctx, "read", key, err)
	}
	etag := aws.ToString(out.ETag)
	if etag == "" {
		return nil, "", fmt.Errorf("read %s/%s: the server sent no ETag, so conditional writes cannot work against it", s.URI(), key)
	}
	return data, Version(etag), nil
}

// PutIfVersion implements Store with S3's conditional writes: PutObject with
// If-None-Match "*" to create, If-Match <etag> to replace. S3 answers 412
// PreconditionFailed when the condition fails and 409
// ConditionalRequestConflict when another conditional write to the key is in
// flight; both mean another writer won.
//
// A write whose answer is lost and that the SDK retries sees its own earlier
// write and reports ErrConflict: callers re-read, as for any conflict, and
// find their change already there.
func (s *S3) PutIfVersion(ctx context.Context, key string, data []byte, match Version) (Version, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.ObjectKey(key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if match == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(string(match))
	}
	if IsIntermediate(key) {
		in.Tagging = aws.String(RetentionTag + "=" + RetentionIntermediate)
	}
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	out, err := s.client.PutObject(cctx, in)
	if err != nil {
		if isConflict(err) {
			what := "it exists already"
			if match != "" {
				what = "it is no longer version " + string(match)
			}
			return "", fmt.Errorf("store %s/%s: %w: %s", s.URI(), key, ErrConflict, what)
		}
		if match != "" && isNotFound(err) {
			// S3 answers a replace of a deleted key with 404 NoSuchKey.
			return "", fmt.Errorf("store %s/%s: %w: it was deleted", s.URI(), key, ErrConflict)
		}
		return "", s.finish(ctx, cctx, "store", key, err)
	}
	etag := aws.ToString(out.ETag)
	if etag == "" {
		return "", fmt.Errorf("store %s/%s: the server sent no ETag, so conditional writes cannot work against it", s.URI(), key)
	}
	return Version(etag), nil
}

// isConflict reports whether err is S3's answer to a failed condition.
func isConflict(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	var respErr *awshttp.ResponseError
	return errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusPreconditionFailed
}

// ListPage implements Store with one ListObjectsV2 request.
func (s *S3) ListPage(ctx context.Context, prefix, startAfter string, limit int) ([]Object, bool, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, false, err
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(s.ObjectKey(prefix)),
		MaxKeys: aws.Int32(int32(pageLimit(limit))),
	}
	if startAfter != "" {
		in.StartAfter = aws.String(s.ObjectKey(startAfter))
	}
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	page, err := s.client.ListObjectsV2(cctx, in)
	if err != nil {
		return nil, false, s.finish(ctx, cctx, "list", prefix, err)
	}
	out := make([]Object, 0, len(page.Contents))
	for _, o := range page.Contents {
		out = append(out, Object{Key: s.storeKey(aws.ToString(o.Key)), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
	}
	return out, aws.ToBool(page.IsTruncated), nil
}

// storeKey is the store key of a full S3 object key.
func (s *S3) storeKey(objectKey string) string {
	if s.prefix == "" {
		return objectKey
	}
	return strings.TrimPrefix(objectKey, s.prefix+"/")
}

// Delete implements Store. S3 answers 204 for a key that does not exist.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	_, err := s.client.DeleteObject(cctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.ObjectKey(key)),
	})
	if err != nil && !isNotFound(err) {
		return s.finish(ctx, cctx, "delete", key, err)
	}
	return nil
}
