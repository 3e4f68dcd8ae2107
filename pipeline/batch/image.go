package batch

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/framefleet/framefleet/internal/sdkhttp"
)

// ECRImage is an image reference in an Amazon ECR private registry.
type ECRImage struct {
	Account, Region, Repository string
	Tag, Digest                 string // one of them
}

// ecrRef matches <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repo>[:tag|@sha256:…].
var ecrRef = regexp.MustCompile(`^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([a-z0-9._/-]+?)(?::([\w][\w.-]{0,127})|@(sha256:[a-f0-9]{64}))?$`)

// ParseECRImage recognises an ECR image reference; other registries return false.
func ParseECRImage(image string) (ECRImage, bool) {
	m := ecrRef.FindStringSubmatch(image)
	if m == nil {
		return ECRImage{}, false
	}
	img := ECRImage{Account: m[1], Region: m[2], Repository: m[3], Tag: m[4], Digest: m[5]}
	if img.Tag == "" && img.Digest == "" {
		img.Tag = "latest" // what a pull without a tag asks for
	}
	return img, true
}

// ImageInfo is what ECR knows about a pushed image.
type ImageInfo struct {
	Digest   string
	Size     int64
	PushedAt time.Time
}

// ErrImageNotFound is returned (wrapped) when the repository or the tag does not exist.
var ErrImageNotFound = errors.New("image not found")

// CheckECRImage asks ECR (ecr:DescribeImages) whether the image was pushed,
// so a typo in the tag fails at setup instead of as CannotPullContainerError
// in every child. endpoint overrides the ECR endpoint (tests); "" uses AWS's.
func CheckECRImage(ctx context.Context, cfg aws.Config, img ECRImage, endpoint string) (ImageInfo, error) {
	client := ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		o.Region = img.Region
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.HTTPClient = sdkhttp.Client(o.HTTPClient)
	})
	id := ecrtypes.ImageIdentifier{}
	if img.Digest != "" {
		id.ImageDigest = aws.String(img.Digest)
	} else {
		id.ImageTag = aws.String(img.Tag)
	}
	out, err := client.DescribeImages(ctx, &ecr.DescribeImagesInput{
		RegistryId:     aws.String(img.Account),
		RepositoryName: aws.String(img.Repository),
		ImageIds:       []ecrtypes.ImageIdentifier{id},
	})
	var noRepo *ecrtypes.RepositoryNotFoundException
	var noImage *ecrtypes.ImageNotFoundException
	switch {
	case errors.As(err, &noRepo):
		return ImageInfo{}, fmt.Errorf("ECR repository %s does not exist in account %s, %s: %w: create it (deploy/framefleet.yaml does) and push the worker image",
			img.Repository, img.Account, img.Region, ErrImageNotFound)
	case errors.As(err, &noImage):
		return ImageInfo{}, fmt.Errorf("%s is not in ECR repository %s: %w: build and push it (container/Dockerfile, .github/workflows/image.yml) or fix batch.image",
			img.ref(), img.Repository, ErrImageNotFound)
	case err != nil:
		return ImageInfo{}, fmt.Errorf("look up image %s in ECR: %w", img.ref(), err)
	case len(out.ImageDetails) == 0:
		return ImageInfo{}, fmt.Errorf("%s: %w", img.ref(), ErrImageNotFound)
	}
	d := out.ImageDetails[0]
	return ImageInfo{Digest: aws.ToString(d.ImageDigest), Size: aws.ToInt64(d.ImageSizeInBytes), PushedAt: aws.ToTime(d.ImagePushedAt)}, nil
}

func (i ECRImage) ref() string {
	if i.Digest != "" {
		return i.Repository + "@" + i.Digest
	}
	return i.Repository + ":" + i.Tag
}
