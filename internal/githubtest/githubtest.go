// Package githubtest is a fake of the parts of GitHub's REST API the action
// uses, for tests. Every request is validated against GitHub's published
// OpenAPI description (npm @octokit/openapi, generated/api.github.com.json):
// its method and path, its parameters (undeclared query parameters too) and
// its JSON body; a request that does not conform fails the test. Event
// payloads come from npm @octokit/webhooks-examples. Both are installed by
// `make github-fixtures` outside the repository (FRAMEFLEET_GITHUB_FIXTURES).
package githubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/framefleet/framefleet/internal/testenv"
)

// FixturesDir is where `make github-fixtures` installs the npm packages.
func FixturesDir() string {
	if d := os.Getenv("FRAMEFLEET_GITHUB_FIXTURES"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "framefleet", "github-fixtures")
}

func fixture(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(FixturesDir(), "node_modules", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("%s is missing: run `make github-fixtures` (installs @octokit/openapi and @octokit/webhooks-examples into %s)", rel, FixturesDir())
		if testenv.CI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

var spec struct {
	once   sync.Once
	router routers.Router
	err    error
}

// githubRouter parses GitHub's OpenAPI description (13 MB, seconds) once
// per test binary. Its servers become "/", so every test server's requests
// route by path alone.
func githubRouter(t testing.TB) routers.Router {
	t.Helper()
	path := fixture(t, "@octokit/openapi/generated/api.github.com.json")
	spec.once.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromFile(path)
		if err != nil {
			spec.err = fmt.Errorf("load GitHub's OpenAPI description: %w", err)
			return
		}
		doc.Servers = openapi3.Servers{{URL: "/"}}
		if spec.router, err = gorillamux.NewRouter(doc); err != nil {
			spec.err = fmt.Errorf("route GitHub's OpenAPI description: %w", err)
		}
	})
	if spec.err != nil {
		t.Fatal(spec.err)
	}
	return spec.router
}

// Example returns a copy of the first @octokit/webhooks-examples payload of
// event whose "action" is action ("" matches any).
func Example(t testing.TB, event, action string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(fixture(t, "@octokit/webhooks-examples/api.github.com/index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all []struct {
		Name     string            `json:"name"`
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.Name != event {
			continue
		}
		for _, raw := range e.Examples {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			if a, _ := m["action"].(string); action == "" || a == action {
				return m
			}
		}
	}
	t.Fatalf("no %s example with action %q in @octokit/webhooks-examples", event, action)
	return nil
}

// File is a changed file as the API lists it.
type File struct {
	Filename, Status, PreviousFilename string
}

// Comment is an issue comment.
type Comment struct {
	ID     int64
	Issue  int
	Author string
	Body   string
}

// Status is a commit status as created.
type Status struct {
	SHA, State, Context, Description, TargetURL string
}

// Request is a request the server answered.
type Request struct {
	Method, Path, Query string
	Body                []byte
}

// Server is the fake API.
type Server struct {
	*httptest.Server
	t      testing.TB
	router routers.Router

	mu sync.Mutex
	// Token is the bearer token every request must carry.
	Token string
	// Login answers GET /user; "" answers 403 as for the workflow token,
	// whose comments are by github-actions[bot].
	Login    string
	prFiles  map[int][]File
	compare  map[string][]File
	missing  map[string]bool
	comments []Comment
	statuses []Status
	nextID   int64
	requests []Request
	faults   []fault
}

type fault struct {
	method string
	path   *regexp.Regexp
	status int
	header http.Header
	body   string
}

// New starts a server; it is closed when the test ends.
func New(t testing.TB, token string) *Server {
	t.Helper()
	s := &Server{router: githubRouter(t), t: t, Token: token, prFiles: map[int][]File{}, compare: map[string][]File{}, missing: map[string]bool{}, nextID: 1000}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// SetPRFiles sets what GET /repos/{o}/{r}/pulls/{n}/files lists.
func (s *Server) SetPRFiles(pr int, files ...File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prFiles[pr] = files
}

// SetCompare sets what comparing base...head lists; unknown pairs answer 404.
func (s *Server) SetCompare(base, head string, files ...File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compare[base+"..."+head] = files
}

// RateLimitOnce answers the next request matching method and path (a
// regular expression) with status and header instead of serving it.
func (s *Server) RateLimitOnce(method, pathRE string, status int, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{method: method, path: regexp.MustCompile(pathRE), status: status, header: header,
		body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`})
}

// FailOnce answers the next request matching method and path (a regular
// expression) with status and a plain GitHub error body.
func (s *Server) FailOnce(method, pathRE string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{method: method, path: regexp.MustCompile(pathRE), status: status,
		body: fmt.Sprintf(`{"message":%q}`, http.StatusText(status))})
}

// AddComment adds a comment as if someone posted it.
func (s *Server) AddComment(issue int, author, body string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.comments = append(s.comments, Comment{ID: s.nextID, Issue: issue, Author: author, Body: body})
	return s.nextID
}

// Comments lists an issue's comments.
func (s *Server) Comments(issue int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.comments {
		if c.Issue == issue {
			out = append(out, c)
		}
	}
	return out
}

// Statuses returns the latest status per context of sha.
func (s *Server) Statuses(sha string) map[string]Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Status{}
	for _, st := range s.statuses {
		if st.SHA == sha {
			out[st.Context] = st
		}
	}
	return out
}

// Requests returns the requests served so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	s.t.Errorf("GitHub API %s %s: %s", r.Method, r.URL.RequestURI(), msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body})
	s.mu.Unlock()

	if got := r.Header.Get("Authorization"); got != "Bearer "+s.Token {
		s.fail(w, r, http.StatusUnauthorized, "Authorization %q: want the action's token", got)
		return
	}
	if err := s.validate(r); err != nil {
		s.fail(w, r, http.StatusBadRequest, "does not conform to GitHub's OpenAPI description: %v", err)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	s.mu.Lock()
	for i, f := range s.faults {
		if f.method == r.Method && f.path.MatchString(r.URL.Path) {
			s.faults = slices.Delete(s.faults, i, i+1)
			s.mu.Unlock()
			for k, v := range f.header {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.status)
			io.WriteString(w, f.body)
			return
		}
	}
	s.mu.Unlock()
	s.route(w, r, body)
}

// validate checks r against the OpenAPI operation it names.
func (s *Server) validate(r *http.Request) error {
	route, params, err := s.router.FindRoute(r)
	if err != nil {
		return fmt.Errorf("no such operation: %w", err)
	}
	declared := map[string]bool{}
	for _, p := range append(slices.Clone(route.PathItem.Parameters), route.Operation.Parameters...) {
		if p.Value != nil && p.Value.In == "query" {
			declared[p.Value.Name] = true
		}
	}
	for k := range r.URL.Query() {
		if !declared[k] {
			return fmt.Errorf("query parameter %q is not declared by %s", k, route.Operation.OperationID)
		}
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	})
}

var (
	rePRFiles  = regexp.MustCompile(`^/repos/[^/]+/[^/]+/pulls/(\d+)/files$`)
	reCompare  = regexp.MustCompile(`^/repos/[^/]+/[^/]+/compare/(.+)$`)
	reComments = regexp.MustCompile(`^/repos/[^/]+/[^/]+/issues/(\d+)/comments$`)
	reComment  = regexp.MustCompile(`^/repos/[^/]+/[^/]+/issues/comments/(\d+)$`)
	reStatus   = regexp.MustCompile(`^/repos/[^/]+/[^/]+/statuses/([0-9a-f]+)$`)
	reCombined = regexp.MustCompile(`^/repos/[^/]+/[^/]+/commits/([^/]+)/status$`)
)

func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	p := r.URL.Path
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m := r.Method; {
	case m == "GET" && p == "/user":
		if s.Login == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration"})
			return
		}
		writeJSON(w, 200, map[string]any{"login": s.Login, "id": 1, "type": "User"})
	case m == "GET" && rePRFiles.MatchString(p):
		n, _ := strconv.Atoi(rePRFiles.FindStringSubmatch(p)[1])
		var items []any
		for _, f := range s.prFiles[n] {
			items = append(items, fileJSON(f))
		}
		page(w, r, items)
	case m == "GET" && reCompare.MatchString(p):
		files, ok := s.compare[reCompare.FindStringSubmatch(p)[1]]
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
			return
		}
		var items []any
		for i, f := range files {
			if i == 300 { // the API's cap
				break
			}
			items = append(items, fileJSON(f))
		}
		writeJSON(w, 200, map[string]any{"status": "ahead", "ahead_by": 1, "behind_by": 0, "total_commits": 1, "commits": []any{}, "files": items})
	case m == "GET" && reComments.MatchString(p):
		n, _ := strconv.Atoi(reComments.FindStringSubmatch(p)[1])
		var items []any
		for _, c := range s.comments {
			if c.Issue == n {
				items = append(items, commentJSON(c))
			}
		}
		page(w, r, items)
	case m == "POST" && reComments.MatchString(p):
		n, _ := strconv.Atoi(reComments.FindStringSubmatch(p)[1])
		var in struct{ Body string }
		json.Unmarshal(body, &in)
		s.nextID++
		c := Comment{ID: s.nextID, Issue: n, Author: s.author(), Body: in.Body}
		s.comments = append(s.comments, c)
		writeJSON(w, http.StatusCreated, commentJSON(c))
	case m == "PATCH" && reComment.MatchString(p):
		id, _ := strconv.ParseInt(reComment.FindStringSubmatch(p)[1], 10, 64)
		var in struct{ Body string }
		json.Unmarshal(body, &in)
		for i := range s.comments {
			if s.comments[i].ID == id {
				if s.comments[i].Author != s.author() {
					writeJSON(w, http.StatusForbidden, map[string]string{"message": "Must have admin rights to Repository."})
					return
				}
				s.comments[i].Body = in.Body
				writeJSON(w, 200, commentJSON(s.comments[i]))
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
	case m == "DELETE" && reComment.MatchString(p):
		id, _ := strconv.ParseInt(reComment.FindStringSubmatch(p)[1], 10, 64)
		for i := range s.comments {
			if s.comments[i].ID == id {
				if s.comments[i].Author != s.author() {
					writeJSON(w, http.StatusForbidden, map[string]string{"message": "Must have admin rights to Repository."})
					return
				}
				s.comments = slices.Delete(s.comments, i, i+1)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
	case m == "POST" && reStatus.MatchString(p):
		var in struct {
			State, Context, Description string
			TargetURL                   string `json:"target_url"`
		}
		json.Unmarshal(body, &in)
		if in.Context == "" {
			in.Context = "default"
		}
		st := Status{SHA: reStatus.FindStringSubmatch(p)[1], State: in.State, Context: in.Context, Description: in.Description, TargetURL: in.TargetURL}
		s.statuses = append(s.statuses, st)
		writeJSON(w, http.StatusCreated, statusJSON(st, len(s.statuses)))
	case m == "GET" && reCombined.MatchString(p):
		sha := reCombined.FindStringSubmatch(p)[1]
		latest := map[string]int{}
		var order []string
		for i, st := range s.statuses {
			if st.SHA == sha {
				if _, ok := latest[st.Context]; !ok {
					order = append(order, st.Context)
				}
				latest[st.Context] = i
			}
		}
		var items []any
		for _, c := range order {
			items = append(items, statusJSON(s.statuses[latest[c]], latest[c]+1))
		}
		perPage, pg := pageParams(r)
		lo, hi := min((pg-1)*perPage, len(items)), min(pg*perPage, len(items))
		if hi < len(items) {
			w.Header().Set("Link", fmt.Sprintf(`<%s?per_page=%d&page=%d>; rel="next"`, "http://"+r.Host+r.URL.Path, perPage, pg+1))
		}
		writeJSON(w, 200, map[string]any{"state": "pending", "sha": sha, "total_count": len(items), "statuses": items[lo:hi]})
	default:
		s.t.Errorf("githubtest: %s %s conforms to the API but the fake does not serve it", r.Method, p)
		writeJSON(w, http.StatusNotImplemented, map[string]string{"message": "not served by githubtest"})
	}
}

func (s *Server) author() string {
	if s.Login != "" {
		return s.Login
	}
	return "github-actions[bot]"
}

func pageParams(r *http.Request) (perPage, pg int) {
	perPage, pg = 30, 1
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		pg = v
	}
	return perPage, pg
}

// page writes one page of items with GitHub's Link header.
func page(w http.ResponseWriter, r *http.Request, items []any) {
	perPage, pg := pageParams(r)
	lo, hi := min((pg-1)*perPage, len(items)), min(pg*perPage, len(items))
	if hi < len(items) {
		w.Header().Set("Link", fmt.Sprintf(`<%s?per_page=%d&page=%d>; rel="next"`, "http://"+r.Host+r.URL.Path, perPage, pg+1))
	}
	out := items[lo:hi]
	if out == nil {
		out = []any{}
	}
	writeJSON(w, 200, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fileJSON(f File) map[string]any {
	m := map[string]any{"sha": "0000000000000000000000000000000000000001", "filename": f.Filename, "status": f.Status, "additions": 0, "deletions": 0, "changes": 0}
	if f.PreviousFilename != "" {
		m["previous_filename"] = f.PreviousFilename
	}
	return m
}

func commentJSON(c Comment) map[string]any {
	typ := "User"
	if strings.HasSuffix(c.Author, "[bot]") {
		typ = "Bot"
	}
	return map[string]any{"id": c.ID, "body": c.Body, "user": map[string]any{"login": c.Author, "type": typ},
		"created_at": time.Unix(0, 0).UTC().Format(time.RFC3339)}
}

func statusJSON(st Status, id int) map[string]any {
	return map[string]any{"id": id, "state": st.State, "context": st.Context, "description": st.Description, "target_url": st.TargetURL}
}
