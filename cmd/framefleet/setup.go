package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/pipeline/batch"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

func newSetupCmd(g *globalFlags) *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Check the AWS resources a Batch render needs and register the job definition",
		Long: `Setup reads the configuration (framefleet.yaml, FRAMEFLEET_* variables) and
checks, in order: the S3 bucket (HeadBucket), that the S3 server honours
conditional writes (a probe key written with If-None-Match twice and with
If-Match and a wrong ETag; the result is recorded in the store, and a server
that ignores them is refused unless s3.unsafe_no_conditional_writes is true), the job queue (it must be ENABLED
and VALID), the worker image (reported only), and the job definition, which is
registered only when it differs from the latest revision framefleet made.

It changes nothing else; deploy/ holds a CloudFormation template that creates
the bucket, the queue and the roles.`,
		Example: `  framefleet setup
  FRAMEFLEET_JOB_QUEUE=renders FRAMEFLEET_IMAGE=ghcr.io/me/framefleet:1 framefleet setup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSetup(cmd.Context(), g, &cf, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cf.register(cmd.Flags())
	return cmd
}

func runSetup(ctx context.Context, g *globalFlags, cf *configFlags, stdout, stderr io.Writer) error {
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	// Setup is about the batch engine, whatever engine renders by default.
	cfg.Engine = config.EngineBatch
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if cfg.Batch.Image == "" {
		return errors.New("batch.image is empty: set the worker image to register the job definition (env FRAMEFLEET_IMAGE), e.g. ghcr.io/you/framefleet:1.0")
	}
	if cfg.Source != "" {
		fmt.Fprintf(stdout, "config        %s\n", cfg.Source)
	}

	awsCfg, err := fleet.LoadAWSConfig(ctx, cfg.Region)
	if err != nil {
		return err
	}

	// 1. The bucket.
	uri, _ := cfg.StoreURI() // validated above
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("store %q: %w", uri, err)
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.S3.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.S3.Endpoint)
		}
		o.UsePathStyle = cfg.S3.PathStyle
	})
	if _, err := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(u.Host)}); err != nil {
		return fmt.Errorf("bucket %s: %w: %s", u.Host, err, bucketFix(err, u.Host))
	}
	fmt.Fprintf(stdout, "bucket        %s: reachable\n", uri)

	// 1b. Conditional writes, which keep identical renders to one run.
	storeOpts := cfg.StoreOptions()
	storeOpts.FailFast = true
	st, err := store.Open(ctx, uri, storeOpts)
	if err != nil {
		return err
	}
	cond, err := store.RecheckConditionalWrites(ctx, st, time.Now())
	switch {
	case err != nil:
		return fmt.Errorf("check conditional writes on %s: %w", uri, err)
	case cond.Supported:
		fmt.Fprintln(stdout, "conditional writes honoured (If-None-Match, If-Match): identical renders make one run")
	case !cfg.S3.UnsafeNoConditionalWrites:
		return &store.NoConditionalWritesError{Store: uri, Reason: cond.Reason, Setting: store.UnsafeSetting}
	default:
		fmt.Fprintf(stdout, "conditional writes IGNORED (%s), accepted by %s: runs are not deduplicated\n", cond.Reason, store.UnsafeSetting)
	}

	// 2. The job queue.
	opts := batch.OptionsFromConfig(cfg)
	opts.Logger = g.logger(stderr)
	eng, err := batch.New(awsCfg, opts)
	if err != nil {
		return err
	}
	q, err := eng.CheckQueue(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "job queue     %s: %s, %s\n", q.Name, q.State, q.Status)

	// 3. The image: an ECR tag that was never pushed would fail every child
	// with CannotPullContainerError; other registries are only named.
	if img, ok := batch.ParseECRImage(cfg.Batch.Image); ok {
		info, err := batch.CheckECRImage(ctx, awsCfg, img, "")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "image         %s: pushed %s (%s, %d MiB)\n", cfg.Batch.Image,
			info.PushedAt.UTC().Format("2006-01-02 15:04 UTC"), info.Digest, info.Size>>20)
		// The instances keep only non-root processes from the metadata
		// service (and the instance role): an image that runs as root is refused.
		user, err := batch.ImageUser(ctx, awsCfg, img, "")
		if err != nil {
			return err
		}
		if batch.IsRootUser(user) {
			return fmt.Errorf("image %s runs as root (USER %q): jobs would reach the instance's metadata service and role; "+
				"build it with an unprivileged user (container/Dockerfile ends with USER %s) and push it again", cfg.Batch.Image, user, batch.DefaultUser)
		}
		fmt.Fprintf(stdout, "image user    %s\n", user)
	} else {
		fmt.Fprintf(stdout, "image         %s (not an ECR image, not checked: the instances must be able to pull it)\n", cfg.Batch.Image)
	}

	// 4. The job definition.
	arn, registered, err := eng.EnsureJobDefinition(ctx, opts.Definition)
	if err != nil {
		return err
	}
	what := "unchanged"
	if registered {
		what = "registered"
	}
	fmt.Fprintf(stdout, "job definition %s: %s (%s)\n", cfg.Batch.JobDefinition, what, arn)
	fmt.Fprintln(stdout, "ready         render on AWS Batch with engine: batch in framefleet.yaml (FRAMEFLEET_ENGINE=batch)")
	return nil
}

// bucketFix says what to do about a failed HeadBucket.
func bucketFix(err error, bucket string) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchBucket":
			return fmt.Sprintf("create it (aws s3 mb s3://%s) or fix bucket/store in framefleet.yaml", bucket)
		case ae.ErrorCode() == "Forbidden" || ae.ErrorCode() == "AccessDenied" || strings.Contains(ae.ErrorCode(), "403"):
			return "your credentials may not use it: check the IAM policy and the region"
		}
	}
	return "check the bucket name, the region and your network"
}
