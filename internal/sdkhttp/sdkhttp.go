// Package sdkhttp holds the HTTP client wrapper every AWS SDK client in
// framefleet uses.
package sdkhttp

import (
	"io"
	"net/http"

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
