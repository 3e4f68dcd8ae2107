// Package ecrtest is an Amazon ECR test server speaking the awsJson1_1
// protocol the SDK uses, for the calls framefleet makes: DescribeImages, and
// BatchGetImage and GetDownloadUrlForLayer to read an image's configuration
// (its user), whose blob it serves at the download URL it hands out.
package ecrtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Image is one pushed image.
type Image struct {
	Repository string
	Tag        string
	Digest     string
	Size       int64
	PushedAt   time.Time
	// User is the image configuration's user (Dockerfile USER); "" is root.
	User string
}

// config is the image's configuration blob and its digest.
func (img Image) config() ([]byte, string) {
	b, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{"User": img.User}})
	sum := sha256.Sum256(b)
	return b, "sha256:" + hex.EncodeToString(sum[:])
}

func (img Image) manifest() string {
	cfg, digest := img.config()
	b, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
		"config": map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(cfg), "digest": digest},
		"layers": []any{},
	})
	return string(b)
}

// Server is a running ECR test server.
type Server struct {
	URL string

	mu     sync.Mutex
	images []Image
	repos  map[string]bool
	calls  int
}

// Start serves the given repositories and images on loopback until the test ends.
func Start(t testing.TB, repos []string, images ...Image) *Server {
	s := &Server{images: images, repos: map[string]bool{}}
	for _, r := range repos {
		s.repos[r] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Calls counts the requests served.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	// Layer downloads go to presigned URLs (S3 on real ECR): no signature.
	if digest, ok := strings.CutPrefix(r.URL.Path, "/blobs/"); ok && r.Method == http.MethodGet {
		for _, img := range s.images {
			if cfg, d := img.config(); d == digest {
				w.Write(cfg)
				return
			}
		}
		http.NotFound(w, r)
		return
	}
	// Real ECR refuses unsigned requests and signatures scoped to another service.
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "/ecr/aws4_request") {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(map[string]string{"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})
		return
	}
	switch target := r.Header.Get("X-Amz-Target"); target {
	case "AmazonEC2ContainerRegistry_V20150921.DescribeImages":
	case "AmazonEC2ContainerRegistry_V20150921.BatchGetImage", "AmazonEC2ContainerRegistry_V20150921.GetDownloadUrlForLayer":
		s.serveImage(w, r, strings.TrimPrefix(target, "AmazonEC2ContainerRegistry_V20150921."))
		return
	default:
		fail(w, "UnsupportedCommandException", "only DescribeImages, BatchGetImage and GetDownloadUrlForLayer are served")
		return
	}
	in, ok := s.decodeRequest(w, r)
	if !ok {
		return
	}
	type detail struct {
		RepositoryName   string   `json:"repositoryName"`
		ImageDigest      string   `json:"imageDigest"`
		ImageTags        []string `json:"imageTags"`
		ImageSizeInBytes int64    `json:"imageSizeInBytes"`
		ImagePushedAt    float64  `json:"imagePushedAt"`
	}
	var out []detail
	for _, id := range in.ImageIDs {
		found := false
		for _, img := range s.images {
			if id.names(img, in.RepositoryName) {
				out = append(out, detail{img.Repository, img.Digest, []string{img.Tag}, img.Size, float64(img.PushedAt.Unix())})
				found = true
			}
		}
		if !found {
			fail(w, "ImageNotFoundException", fmt.Sprintf("The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s'", id.ImageDigest, id.ImageTag, in.RepositoryName))
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(map[string]any{"imageDetails": out})
}

// imageRequest is the body of the ECR calls this server answers.
type imageRequest struct {
	RepositoryName string    `json:"repositoryName"`
	LayerDigest    string    `json:"layerDigest"`
	ImageIDs       []imageID `json:"imageIds"`
}

type imageID struct {
	ImageTag    string `json:"imageTag"`
	ImageDigest string `json:"imageDigest"`
}

// names reports whether id, asked of repository repo, is img (by tag or digest).
func (id imageID) names(img Image, repo string) bool {
	return img.Repository == repo && ((id.ImageTag != "" && img.Tag == id.ImageTag) || (id.ImageDigest != "" && img.Digest == id.ImageDigest))
}

// decodeRequest reads a call's body and checks its repository exists,
// answering the error itself when not (ok false).
func (s *Server) decodeRequest(w http.ResponseWriter, r *http.Request) (in imageRequest, ok bool) {
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(w, "InvalidParameterException", err.Error())
		return in, false
	}
	if !s.repos[in.RepositoryName] {
		fail(w, "RepositoryNotFoundException", fmt.Sprintf("The repository with name '%s' does not exist in the registry", in.RepositoryName))
		return in, false
	}
	return in, true
}

func fail(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// serveImage answers BatchGetImage (the image's manifest) and
// GetDownloadUrlForLayer (a URL of this server for the configuration blob).
func (s *Server) serveImage(w http.ResponseWriter, r *http.Request, op string) {
	in, ok := s.decodeRequest(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if op == "GetDownloadUrlForLayer" {
		for _, img := range s.images {
			if _, d := img.config(); img.Repository == in.RepositoryName && d == in.LayerDigest {
				json.NewEncoder(w).Encode(map[string]string{"downloadUrl": s.URL + "/blobs/" + d, "layerDigest": d})
				return
			}
		}
		fail(w, "LayersNotFoundException", "The layer does not exist: "+in.LayerDigest)
		return
	}
	var images, failures []map[string]any
	for _, id := range in.ImageIDs {
		found := false
		for _, img := range s.images {
			if id.names(img, in.RepositoryName) {
				images = append(images, map[string]any{"registryId": "123456789012", "repositoryName": img.Repository,
					"imageId": map[string]string{"imageTag": img.Tag, "imageDigest": img.Digest}, "imageManifest": img.manifest(),
					"imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json"})
				found = true
			}
		}
		if !found {
			failures = append(failures, map[string]any{"imageId": id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"})
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"images": images, "failures": failures})
}
