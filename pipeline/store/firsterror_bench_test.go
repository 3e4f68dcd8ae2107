package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

// BenchmarkFirstErrorOfAConfigurationMistake is the time from a store's
// first call to its error, for each configuration mistake, with the
// first-contact check front-ends use (fleet.Open sets Options.FailFast).
// Results and the command: docs/BENCHMARKS.md.
func BenchmarkFirstErrorOfAConfigurationMistake(b *testing.B) {
	srv := s3test.Start(b)
	mistakes := []struct {
		name      string
		endpoint  string
		pathStyle bool
	}{
		{"refused port", s3test.RefusedEndpoint(b), true},
		{"https on a plain-HTTP port", srv.WrongSchemeEndpoint(), true},
		// bucket.localhost resolves (to loopback) on some systems and not on others.
		{"virtual-host name on a custom endpoint", strings.Replace(srv.Endpoint, "127.0.0.1", "localhost", 1), false},
	}
	for _, m := range mistakes {
		b.Run(m.name, func(b *testing.B) {
			// The store's defaults (8 attempts, backoff up to 20 s), as a user has them.
			opts := store.Options{Region: srv.Region, Endpoint: m.endpoint, UsePathStyle: m.pathStyle,
				Credentials: srv.Credentials(), FailFast: true}
			for b.Loop() {
				st, err := store.NewS3(context.Background(), srv.Bucket, "bench", opts)
				if err != nil {
					b.Fatal(err)
				}
				_, err = st.Stat(context.Background(), "runs/r/plan.json")
				if err == nil || errors.Is(err, store.ErrNotFound) {
					b.Fatalf("%s: no configuration error: %v", m.name, err)
				}
				var hint *store.HintError
				if !errors.As(err, &hint) || !hint.FirstContact {
					b.Fatalf("%s: %v; want a first-contact hint", m.name, err)
				}
			}
		})
	}
}
