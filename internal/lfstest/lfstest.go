// Package lfstest is a Git LFS server for tests: the batch API
// (POST <repo>.git/info/lfs/objects/batch) with the basic transfer adapter
// (download by GET, upload by PUT, verify by POST), on loopback, as
// git-lfs/git-lfs docs/api/batch.md and basic-transfers.md describe it. The
// real git-lfs client talks to it; so can code that fetches LFS objects
// itself (the Slack bot, which has no checkout).
package lfstest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// MediaType is the LFS API's JSON media type.
const MediaType = "application/vnd.git-lfs+json"

// Server is a running LFS server holding objects by SHA-256 for any repository.
type Server struct {
	// URL is the server's base, e.g. http://127.0.0.1:43121.
	URL string

	user, password string

	mu       sync.Mutex
	objects  map[string][]byte
	requests []Request
}

// Request is one request the server answered.
type Request struct {
	Method, Path string
	// Operation and OIDs are the batch request's (empty for transfers).
	Operation string
	OIDs      []string
	Status    int
}

// Option configures Start.
type Option func(*Server)

// WithBasicAuth makes every request need HTTP basic authentication, as
// GitHub's LFS endpoint does (actions/checkout passes the token as an
// http.extraheader "AUTHORIZATION: basic base64(x-access-token:<token>)").
func WithBasicAuth(user, password string) Option {
	return func(s *Server) { s.user, s.password = user, password }
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{objects: map[string][]byte{}}
	for _, o := range opts {
		o(s)
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// RepoURL is the clone URL of a repository on this server, e.g.
// http://127.0.0.1:43121/owner/repo.git; git-lfs derives the LFS endpoint
// <RepoURL>/info/lfs from it.
func (s *Server) RepoURL(repo string) string {
	return s.URL + "/" + strings.TrimSuffix(repo, ".git") + ".git"
}

// AuthHeader is the header value actions/checkout would configure.
func (s *Server) AuthHeader() string {
	return "basic " + base64.StdEncoding.EncodeToString([]byte(s.user+":"+s.password))
}

// Add stores an object and returns its SHA-256 (hex).
func (s *Server) Add(data []byte) string {
	oid := OID(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[oid] = append([]byte(nil), data...)
	return oid
}

// Object returns a stored object.
func (s *Server) Object(oid string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[oid]
	return b, ok
}

// Remove deletes a stored object, so downloads of it fail.
func (s *Server) Remove(oid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, oid)
}

// Requests returns what the server answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// OID is the LFS object id of data.
func OID(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Pointer is the pointer file git-lfs commits in place of data (docs/spec.md).
func Pointer(data []byte) []byte {
	return fmt.Appendf(nil, "version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", OID(data), len(data))
}

var (
	batchPath  = regexp.MustCompile(`^/(.+)\.git/info/lfs/objects/batch$`)
	objectPath = regexp.MustCompile(`^/(.+)\.git/info/lfs/objects/([0-9a-f]{64})(/verify)?$`)
	oidRE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

type batchRequest struct {
	Operation string   `json:"operation"`
	Transfers []string `json:"transfers"`
	Objects   []struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	} `json:"objects"`
}

type action struct {
	Href      string            `json:"href"`
	Header    map[string]string `json:"header,omitempty"`
	ExpiresIn int               `json:"expires_in,omitempty"`
}

type objectError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type batchObject struct {
	OID           string            `json:"oid"`
	Size          int64             `json:"size"`
	Authenticated bool              `json:"authenticated,omitempty"`
	Actions       map[string]action `json:"actions,omitempty"`
	Error         *objectError      `json:"error,omitempty"`
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

func (s *Server) fail(w http.ResponseWriter, rec Request, status int, msg string) {
	rec.Status = status
	s.record(rec)
	w.Header().Set("Content-Type", MediaType)
	if status == http.StatusUnauthorized {
		w.Header().Set("LFS-Authenticate", `Basic realm="lfstest"`)
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path}
	if s.user != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.user || p != s.password {
			s.fail(w, rec, http.StatusUnauthorized, "Credentials needed")
			return
		}
	}
	if m := batchPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
		s.batch(w, r, m[1], rec)
		return
	}
	m := objectPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		s.fail(w, rec, http.StatusNotFound, "not an LFS path")
		return
	}
	oid := m[2]
	switch {
	case m[3] == "/verify" && r.Method == http.MethodPost:
		var v struct {
			OID  string `json:"oid"`
			Size int64  `json:"size"`
		}
		data, ok := s.Object(oid)
		if json.NewDecoder(r.Body).Decode(&v) != nil || !ok || v.OID != oid || v.Size != int64(len(data)) {
			s.fail(w, rec, http.StatusUnprocessableEntity, "object not stored as described")
			return
		}
	case m[3] == "" && r.Method == http.MethodGet:
		data, ok := s.Object(oid)
		if !ok {
			s.fail(w, rec, http.StatusNotFound, "Object does not exist")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(data)
	case m[3] == "" && r.Method == http.MethodPut:
		data, err := io.ReadAll(r.Body)
		if err != nil || OID(data) != oid {
			s.fail(w, rec, http.StatusUnprocessableEntity, "content does not match the object id")
			return
		}
		s.Add(data)
	default:
		s.fail(w, rec, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	rec.Status = http.StatusOK
	s.record(rec)
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request, repo string, rec Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), MediaType) {
		s.fail(w, rec, http.StatusUnsupportedMediaType, "Content-Type must be "+MediaType)
		return
	}
	var req batchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, rec, http.StatusUnprocessableEntity, "batch request is not JSON: "+err.Error())
		return
	}
	rec.Operation = req.Operation
	if req.Operation != "download" && req.Operation != "upload" {
		s.fail(w, rec, http.StatusUnprocessableEntity, "operation must be download or upload")
		return
	}
	if len(req.Transfers) > 0 && !contains(req.Transfers, "basic") {
		s.fail(w, rec, http.StatusUnprocessableEntity, "only the basic transfer adapter is offered")
		return
	}
	base := s.URL + "/" + repo + ".git/info/lfs/objects/"
	header := map[string]string{}
	if a := r.Header.Get("Authorization"); a != "" {
		header["Authorization"] = a
	}
	var out []batchObject
	for _, o := range req.Objects {
		rec.OIDs = append(rec.OIDs, o.OID)
		bo := batchObject{OID: o.OID, Size: o.Size, Authenticated: true}
		data, have := s.Object(o.OID)
		switch {
		case !oidRE.MatchString(o.OID):
			bo.Error = &objectError{Code: http.StatusUnprocessableEntity, Message: "invalid object id"}
		case req.Operation == "download" && !have:
			bo.Error = &objectError{Code: http.StatusNotFound, Message: "Object does not exist"}
		case req.Operation == "download" && int64(len(data)) != o.Size:
			bo.Error = &objectError{Code: http.StatusUnprocessableEntity, Message: "size does not match the object"}
		case req.Operation == "download":
			bo.Actions = map[string]action{"download": {Href: base + o.OID, Header: header, ExpiresIn: 3600}}
		case !have: // upload; an object the server has needs no actions
			bo.Actions = map[string]action{
				"upload": {Href: base + o.OID, Header: header, ExpiresIn: 3600},
				"verify": {Href: base + o.OID + "/verify", Header: header, ExpiresIn: 3600},
			}
		}
		out = append(out, bo)
	}
	rec.Status = http.StatusOK
	s.record(rec)
	w.Header().Set("Content-Type", MediaType)
	json.NewEncoder(w).Encode(map[string]any{"transfer": "basic", "objects": out, "hash_algo": "sha256"})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
