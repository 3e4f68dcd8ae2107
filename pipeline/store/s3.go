package store

import (
	"context"
	"errors"
)

// NewS3 opens an S3 store. (Being implemented in the AWS issue.)
func NewS3(ctx context.Context, bucket, prefix string, opts Options) (Store, error) {
	return nil, errors.New("s3 store: not implemented yet")
}
