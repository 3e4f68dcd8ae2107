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
	endpoint = ecrEndpoint(img, endpoint)
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

// Manifest media types BatchGetImage is asked for: single-platform images
// and indexes (multi-platform), Docker's and OCI's.
var manifestTypes = []string{
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.index.v1+json",
}

// ImageUser reads the user an ECR image's configuration runs as (Dockerfile
// USER; "" is root): BatchGetImage for the manifest (of the linux/amd64
// image of an index), GetDownloadUrlForLayer for its configuration blob,
// then the blob itself. endpoint is as for CheckECRImage.
func ImageUser(ctx context.Context, cfg aws.Config, img ECRImage, endpoint string) (string, error) {
	endpoint = ecrEndpoint(img, endpoint)
	id := map[string]string{"imageTag": img.Tag}
	if img.Digest != "" {
		id = map[string]string{"imageDigest": img.Digest}
	}
	for range 2 { // an index, then the image it names
		body, _ := json.Marshal(map[string]any{ // plain values: cannot fail
			"registryId": img.Account, "repositoryName": img.Repository, "imageIds": []map[string]string{id},
			"acceptedMediaTypes": manifestTypes,
		})
		var out struct {
			Images []struct {
				ImageManifest string `json:"imageManifest"`
			} `json:"images"`
			Failures []struct {
				FailureCode   string `json:"failureCode"`
				FailureReason string `json:"failureReason"`
			} `json:"failures"`
		}
		code, msg, err := ecrCall(ctx, cfg, img.Region, endpoint, "BatchGetImage", body, &out)
		switch {
		case err != nil:
			return "", fmt.Errorf("read the manifest of %s: %w", img.ref(), err)
		case code != "":
			return "", fmt.Errorf("read the manifest of %s: %s: %s", img.ref(), code, msg)
		case len(out.Images) == 0:
			reason := "no manifest"
			if len(out.Failures) > 0 {
				reason = out.Failures[0].FailureCode + ": " + out.Failures[0].FailureReason
			}
			return "", fmt.Errorf("read the manifest of %s: %s: %w", img.ref(), reason, ErrImageNotFound)
		}
		var m struct {
			Config    struct{ Digest string } `json:"config"`
			Manifests []struct {
				Digest   string `json:"digest"`
				Platform struct {
					OS           string `json:"os"`
					Architecture string `json:"architecture"`
				} `json:"platform"`
			} `json:"manifests"`
		}
		if err := json.Unmarshal([]byte(out.Images[0].ImageManifest), &m); err != nil {
			return "", fmt.Errorf("the manifest of %s is not JSON: %w", img.ref(), err)
		}
		if m.Config.Digest != "" {
			return configUser(ctx, cfg, img, endpoint, m.Config.Digest)
		}
		next := ""
		for _, e := range m.Manifests {
			if e.Platform.OS == "linux" && e.Platform.Architecture == "amd64" {
				next = e.Digest
			}
		}
		if next == "" {
			return "", fmt.Errorf("%s has no linux/amd64 image: build the worker image for linux/amd64", img.ref())
		}
		id = map[string]string{"imageDigest": next}
	}
	return "", fmt.Errorf("%s: an index names another index: push a single-platform image or a plain index", img.ref())
}

// configUser downloads an image configuration blob and returns its user.
func configUser(ctx context.Context, cfg aws.Config, img ECRImage, endpoint, digest string) (string, error) {
	body, _ := json.Marshal(map[string]any{"registryId": img.Account, "repositoryName": img.Repository, "layerDigest": digest})
	var out struct {
		DownloadURL string `json:"downloadUrl"`
	}
	code, msg, err := ecrCall(ctx, cfg, img.Region, endpoint, "GetDownloadUrlForLayer", body, &out)
	switch {
	case err != nil:
		return "", fmt.Errorf("locate the configuration of %s: %w", img.ref(), err)
	case code != "":
		return "", fmt.Errorf("locate the configuration of %s: %s: %s", img.ref(), code, msg)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, out.DownloadURL, nil)
	if err != nil {
		return "", fmt.Errorf("configuration URL of %s: %w", img.ref(), err)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("download the configuration of %s: %w", img.ref(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download the configuration of %s: %s", img.ref(), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("download the configuration of %s: %w", img.ref(), err)
	}
	if sum := sha256.Sum256(data); "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return "", fmt.Errorf("the configuration of %s does not match its digest %s", img.ref(), digest)
	}
	var c struct {
		Config struct {
			User string `json:"User"`
		} `json:"config"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("the configuration of %s is not JSON: %w", img.ref(), err)
	}
	return c.Config.User, nil
}

// IsRootUser reports whether a container user (name, uid, or either with
// :group) is root; "" is root, Docker's default.
func IsRootUser(u string) bool {
	name, _, _ := strings.Cut(strings.TrimSpace(u), ":")
	return name == "" || name == "0" || name == "root"
}

// ecrEndpoint is endpoint, else AWS_ENDPOINT_URL_ECR, else ECR's for the region.
func ecrEndpoint(img ECRImage, endpoint string) string {
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_ECR")
	}
	if endpoint == "" {
		endpoint = "https://api.ecr." + img.Region + ".amazonaws.com"
		if strings.HasPrefix(img.Region, "cn-") {
			endpoint += ".cn"
		}
	}
	return endpoint
}
