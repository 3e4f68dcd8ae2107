package batch_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/ecrtest"
	"github.com/framefleet/framefleet/pipeline/batch"
)

func TestParseECRImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		image string
		want  batch.ECRImage
		ok    bool
	}{
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/framefleet:3.4.1", batch.ECRImage{Account: "123456789012", Region: "eu-west-1", Repository: "framefleet", Tag: "3.4.1"}, true},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/team/framefleet", batch.ECRImage{Account: "123456789012", Region: "us-east-1", Repository: "team/framefleet", Tag: "latest"}, true},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/ff@" + digest, batch.ECRImage{Account: "123456789012", Region: "cn-north-1", Repository: "ff", Digest: digest}, true},
		{"ghcr.io/acme/framefleet:1", batch.ECRImage{}, false},
		{"framefleet:1", batch.ECRImage{}, false},
		{"12345.dkr.ecr.eu-west-1.amazonaws.com/x:1", batch.ECRImage{}, false},
	}
	for _, tt := range tests {
		got, ok := batch.ParseECRImage(tt.image)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseECRImage(%q) = %+v, %v; want %+v, %v", tt.image, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCheckECRImage(t *testing.T) {
	pushed := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	srv := ecrtest.Start(t, []string{"framefleet"},
		ecrtest.Image{Repository: "framefleet", Tag: "3.4.1", Digest: "sha256:" + strings.Repeat("0f", 32), Size: 912345678, PushedAt: pushed})
	ctx := context.Background()
	tests := []struct {
		image    string
		notFound string
	}{
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/framefleet:3.4.1", ""},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/framefleet:3.4.2", "framefleet:3.4.2 is not in ECR repository framefleet"},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/nope:1", "ECR repository nope does not exist"},
	}
	for _, tt := range tests {
		img, ok := batch.ParseECRImage(tt.image)
		if !ok {
			t.Fatalf("%s is not an ECR image", tt.image)
		}
		info, err := batch.CheckECRImage(ctx, awsConfig(), img, srv.URL)
		if tt.notFound == "" {
			if err != nil || info.Size != 912345678 || !info.PushedAt.Equal(pushed) || !strings.HasPrefix(info.Digest, "sha256:0f") {
				t.Errorf("%s: %+v, %v", tt.image, info, err)
			}
			continue
		}
		if !errors.Is(err, batch.ErrImageNotFound) || !strings.Contains(err.Error(), tt.notFound) {
			t.Errorf("%s: error %v, want ErrImageNotFound saying %q", tt.image, err, tt.notFound)
		}
	}
}

// The user an image runs as is read from its configuration blob, through the
// calls ECR serves (BatchGetImage, GetDownloadUrlForLayer, the blob).
func TestImageUser(t *testing.T) {
	digest := func(b byte) string { return "sha256:" + strings.Repeat(string([]byte{b, b}), 32) }
	srv := ecrtest.Start(t, []string{"framefleet"},
		ecrtest.Image{Repository: "framefleet", Tag: "v1-blender3.4.1", Digest: digest('1'), User: "10001:10001"},
		ecrtest.Image{Repository: "framefleet", Tag: "rooted", Digest: digest('2'), User: ""},
		ecrtest.Image{Repository: "framefleet", Tag: "named-root", Digest: digest('3'), User: "root"})
	for tag, want := range map[string]struct {
		user string
		root bool
	}{"v1-blender3.4.1": {"10001:10001", false}, "rooted": {"", true}, "named-root": {"root", true}} {
		img, _ := batch.ParseECRImage("123456789012.dkr.ecr.us-east-1.amazonaws.com/framefleet:" + tag)
		got, err := batch.ImageUser(context.Background(), awsConfig(), img, srv.URL)
		if err != nil || got != want.user || batch.IsRootUser(got) != want.root {
			t.Errorf("%s: user %q (root %v), %v; want %q (root %v)", tag, got, batch.IsRootUser(got), err, want.user, want.root)
		}
	}
	img, _ := batch.ParseECRImage("123456789012.dkr.ecr.us-east-1.amazonaws.com/framefleet:missing")
	if _, err := batch.ImageUser(context.Background(), awsConfig(), img, srv.URL); !errors.Is(err, batch.ErrImageNotFound) {
		t.Errorf("missing image: %v, want ErrImageNotFound", err)
	}
}

func TestIsRootUser(t *testing.T) {
	for u, want := range map[string]bool{"": true, "0": true, "root": true, "0:0": true, "root:staff": true, "10001": false, "10001:10001": false, "framefleet": false} {
		if got := batch.IsRootUser(u); got != want {
			t.Errorf("IsRootUser(%q) = %v, want %v", u, got, want)
		}
	}
}
