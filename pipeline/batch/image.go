package batch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// ECRImage is an image reference in an Amazon ECR private registry.
type ECRImage struct {
	Account, Region, Repository string
	Tag, Digest                 string // one of them
}

// ecrRef matches <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repo>[:tag|@sha256:…].
// It is compiled on first use: its {0,127} repetition costs ~2,000 allocations,
// which every command (inspect included) would otherwise pay at start-up.
var ecrRef = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/([a-z0-9._/-]+?)(?::([\w][\w.-]{0,127})|@(sha256:[a-f0-9]{64}))?$`)
})

// ParseECRImage recognises an ECR image reference; other registries return false.
func ParseECRImage(image string) (ECRImage, bool) {
	m := ecrRef().FindStringSubmatch(image)
	if m == nil {
		return ECRImage{}, false
	}
	img := ECRImage{Account: m[1], Region: m[2], Repository: m[4], Tag: m[5], Digest: m[6]}
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
// in every child. endpoint overrides the ECR endpoint (tests); "" uses
// AWS_ENDPOINT_URL_ECR or AWS's.
//
// It makes this one awsJson1_1 call itself, signed with the SDK's SigV4
// signer and credentials, rather than through service/ecr: linking that
// client adds 0.5 ms of package initialisation (its schema tables) to every
// framefleet command, inspect included, for a call only setup makes.
func CheckECRImage(ctx context.Context, cfg aws.Config, img ECRImage, endpoint string) (ImageInfo, error) {
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_ECR")
	}
	if endpoint == "" {
		endpoint = "https://api.ecr." + img.Region + ".amazonaws.com"
		if strings.HasPrefix(img.Region, "cn-") {
			endpoint += ".cn"
		}
	}
	id := map[string]string{"imageTag": img.Tag}
	if img.Digest != "" {
		id = map[string]string{"imageDigest": img.Digest}
	}
	body, _ := json.Marshal(map[string]any{ // plain values: cannot fail
		"registryId": img.Account, "repositoryName": img.Repository, "imageIds": []map[string]string{id},
	})
	var out struct {
		ImageDetails []struct {
			ImageDigest      string  `json:"imageDigest"`
			ImageSizeInBytes int64   `json:"imageSizeInBytes"`
			ImagePushedAt    float64 `json:"imagePushedAt"`
		} `json:"imageDetails"`
	}
	code, msg, err := ecrCall(ctx, cfg, img.Region, endpoint, "DescribeImages", body, &out)
	switch {
	case err != nil:
		return ImageInfo{}, fmt.Errorf("look up image %s in ECR: %w", img.ref(), err)
	case code == "RepositoryNotFoundException":
		return ImageInfo{}, fmt.Errorf("ECR repository %s does not exist in account %s, %s: %w: create it (deploy/framefleet.yaml does) and push the worker image",
			img.Repository, img.Account, img.Region, ErrImageNotFound)
	case code == "ImageNotFoundException":
		return ImageInfo{}, fmt.Errorf("%s is not in ECR repository %s: %w: build and push it (container/Dockerfile, .github/workflows/image.yml) or fix batch.image",
			img.ref(), img.Repository, ErrImageNotFound)
	case code != "":
		return ImageInfo{}, fmt.Errorf("look up image %s in ECR: %s: %s", img.ref(), code, msg)
	case len(out.ImageDetails) == 0:
		return ImageInfo{}, fmt.Errorf("%s: %w", img.ref(), ErrImageNotFound)
	}
	d := out.ImageDetails[0]
	sec, frac := math.Modf(d.ImagePushedAt)
	return ImageInfo{Digest: d.ImageDigest, Size: d.ImageSizeInBytes, PushedAt: time.Unix(int64(sec), int64(frac*1e9)).UTC()}, nil
}

// ecrCall makes one signed awsJson1_1 request. It returns the service's
// error code and message (e.g. ImageNotFoundException) when ECR answered
// with one, and err when the call itself failed.
func ecrCall(ctx context.Context, cfg aws.Config, region, endpoint, op string, body []byte, out any) (code, msg string, err error) {
	if cfg.Credentials == nil {
		return "", "", errors.New("no AWS credentials")
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return "", "", fmt.Errorf("AWS credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(endpoint, "/")+"/", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921."+op)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "ecr", region, time.Now()); err != nil {
		return "", "", fmt.Errorf("sign request: %w", err)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) != nil || e.Type == "" {
			return "", "", fmt.Errorf("ECR answered %s", resp.Status)
		}
		// __type may be namespaced: "com.amazonaws.ecr#ImageNotFoundException".
		return e.Type[strings.LastIndexByte(e.Type, '#')+1:], e.Message, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return "", "", fmt.Errorf("decode ECR %s answer: %w", op, err)
	}
	return "", "", nil
}

func (i ECRImage) ref() string {
	if i.Digest != "" {
		return i.Repository + "@" + i.Digest
	}
	return i.Repository + ":" + i.Tag
}
