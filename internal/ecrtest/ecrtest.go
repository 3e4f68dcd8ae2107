// Package ecrtest is an Amazon ECR test server speaking the awsJson1_1
// protocol the SDK uses, for the one call framefleet makes: DescribeImages.
package ecrtest

import (
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
	// Real ECR refuses unsigned requests and signatures scoped to another service.
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "/ecr/aws4_request") {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(map[string]string{"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})
		return
	}
	if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.DescribeImages" {
		fail(w, "UnsupportedCommandException", "only DescribeImages is served")
		return
	}
	var in struct {
		RepositoryName string `json:"repositoryName"`
		ImageIDs       []struct {
			ImageTag    string `json:"imageTag"`
			ImageDigest string `json:"imageDigest"`
		} `json:"imageIds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(w, "InvalidParameterException", err.Error())
		return
	}
	if !s.repos[in.RepositoryName] {
		fail(w, "RepositoryNotFoundException", fmt.Sprintf("The repository with name '%s' does not exist in the registry", in.RepositoryName))
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
			if img.Repository == in.RepositoryName && ((id.ImageTag != "" && img.Tag == id.ImageTag) || (id.ImageDigest != "" && img.Digest == id.ImageDigest)) {
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

func fail(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}
