// Package logstest is a CloudWatch Logs test server speaking the awsJson1_1
// protocol the SDK uses, for the one call framefleet makes: GetLogEvents,
// which reads a Batch attempt's log stream in /aws/batch/job.
package logstest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Event is one log line as the awslogs driver stores it.
type Event struct {
	Time    time.Time
	Message string
}

// Request is a GetLogEvents call as the server received it.
type Request struct {
	LogGroupName  string `json:"logGroupName"`
	LogStreamName string `json:"logStreamName"`
	Limit         *int   `json:"limit"`
	StartFromHead *bool  `json:"startFromHead"`
	NextToken     string `json:"nextToken"`
}

// Server is a running CloudWatch Logs test server.
type Server struct {
	URL string

	mu       sync.Mutex
	streams  map[string][]Event // by group + "\x00" + stream
	requests []Request
}

// Start serves on loopback until the test ends.
func Start(t testing.TB) *Server {
	s := &Server{streams: map[string][]Event{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Append adds lines to a stream, creating it; each line is one event a
// millisecond after the previous.
func (s *Server) Append(group, stream string, lines ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := group + "\x00" + stream
	at := time.Now()
	if evs := s.streams[k]; len(evs) > 0 {
		at = evs[len(evs)-1].Time
	}
	for _, l := range lines {
		at = at.Add(time.Millisecond)
		s.streams[k] = append(s.streams[k], Event{Time: at, Message: l})
	}
}

// Requests lists the GetLogEvents calls served, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// Real CloudWatch Logs refuses unsigned requests and signatures scoped
	// to another service, and answers only POSTs of its JSON protocol.
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "/logs/aws4_request") {
		fail(w, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		fail(w, http.StatusBadRequest, "SerializationException", "want a POST of application/x-amz-json-1.1")
		return
	}
	if r.Header.Get("X-Amz-Target") != "Logs_20140328.GetLogEvents" {
		fail(w, http.StatusBadRequest, "UnknownOperationException", "only GetLogEvents is served")
		return
	}
	var in Request
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, in)
	evs, ok := s.streams[in.LogGroupName+"\x00"+in.LogStreamName]
	evs = append([]Event(nil), evs...)
	s.mu.Unlock()
	switch {
	case in.LogGroupName == "" || in.LogStreamName == "":
		fail(w, http.StatusBadRequest, "InvalidParameterException", "logGroupName and logStreamName are required")
		return
	case in.Limit != nil && (*in.Limit < 1 || *in.Limit > 10000):
		fail(w, http.StatusBadRequest, "InvalidParameterException", "limit must be between 1 and 10000")
		return
	case in.NextToken != "":
		// One page holds every event this server keeps; a token means the
		// caller paged past the end, which real CloudWatch answers with no events.
		evs = nil
	case !ok:
		fail(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log stream does not exist.")
		return
	}
	limit := 10000
	if in.Limit != nil {
		limit = *in.Limit
	}
	// Without startFromHead the newest events come back (still oldest first).
	if len(evs) > limit {
		if in.StartFromHead != nil && *in.StartFromHead {
			evs = evs[:limit]
		} else {
			evs = evs[len(evs)-limit:]
		}
	}
	type event struct {
		Timestamp     int64  `json:"timestamp"`
		Message       string `json:"message"`
		IngestionTime int64  `json:"ingestionTime"`
	}
	out := struct {
		Events            []event `json:"events"`
		NextForwardToken  string  `json:"nextForwardToken"`
		NextBackwardToken string  `json:"nextBackwardToken"`
	}{Events: []event{}, NextForwardToken: "f/end", NextBackwardToken: "b/start"}
	for _, e := range evs {
		ms := e.Time.UnixMilli()
		out.Events = append(out.Events, event{Timestamp: ms, Message: e.Message, IngestionTime: ms})
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}
