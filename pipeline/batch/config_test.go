package batch_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/batch"
	"github.com/framefleet/framefleet/pipeline/config"
)

func TestOptionsFromConfig(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), "pipeline", "config", "testdata", "good")
	tests := []struct {
		file     string
		platform batch.Platform
		publicIP bool
	}{
		{"batch_ec2.yaml", batch.PlatformEC2, false},
		{"batch_fargate.yaml", batch.PlatformFargate, true},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := config.Load(filepath.Join(dir, tc.file), nil)
			if err != nil {
				t.Fatal(err)
			}
			opts := batch.OptionsFromConfig(cfg)
			s := opts.Definition
			if opts.Queue != cfg.Batch.JobQueue || s.Name != cfg.Batch.JobDefinition || s.Image != cfg.Batch.Image {
				t.Errorf("options %+v from %+v", opts, cfg.Batch)
			}
			if s.Platform != tc.platform || s.AssignPublicIP != tc.publicIP || s.VCPUs != cfg.Batch.VCPUs || s.MemoryMiB != cfg.Batch.MemoryMiB {
				t.Errorf("spec %+v", s)
			}
			if s.Attempts != cfg.Batch.Attempts || s.BlenderVersion != cfg.Batch.BlenderVersion {
				t.Errorf("spec %+v", s)
			}
			if err := s.Validate(); err != nil {
				t.Errorf("a valid configuration gives an invalid spec: %v", err)
			}
			// attempt_timeout is a render attempt's budget, sent with the
			// render submission: the definition (shared with the stitch) has none.
			if time.Duration(cfg.Batch.AttemptTimeout) <= 0 || !s.Registers() {
				t.Fatalf("%s should set attempt_timeout and an image for this test", tc.file)
			}
			srv := batchtest.Start(t, batchtest.Options{})
			if _, _, err := newEngine(t, srv, s).EnsureJobDefinition(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			name := s.Name
			if name == "" {
				name = batch.DefaultDefinitionName
			}
			if d := srv.JobDefinitions(name); len(d) != 1 || d[0].TimeoutSeconds() != int(batch.DefaultTimeout.Seconds()) {
				t.Errorf("registered definition's timeout (%+v), want the default %s", d, batch.DefaultTimeout)
			}
		})
	}
}
