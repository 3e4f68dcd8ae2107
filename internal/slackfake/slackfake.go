// Package slackfake is a recording Slack for tests: slack-go's slacktest
// server with the Web API methods it lacks (chat.update, the external file
// upload flow, files.list and downloads, usergroups.users.list,
// conversations.replies), unique message timestamps, response_url capture,
// injectable 429 answers, and a Socket Mode WebSocket endpoint that
// apps.connections.open points at.
package slackfake

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Message is a posted message and its edits.
type Message struct {
	Channel   string
	TS        string
	ThreadTS  string
	Text      string
	Blocks    string // JSON
	Broadcast bool
	Metadata  string // JSON
	Edits     []Edit
}

// Edit is one chat.update of a message.
type Edit struct {
	Text   string
	Blocks string
}

// Upload is a file shared with files.completeUploadExternal.
type Upload struct {
	ID       string
	TS       string // the thread message carrying the file
	Name     string
	Size     int
	Channel  string
	ThreadTS string
	Comment  string
}

// File is a file the fake lists in a channel (files.list) and serves.
type File struct {
	ID, Name, Channel string
	Created           time.Time
	Data              []byte
	// Size overrides len(Data) in the listing (a file claiming to be large).
	Size int
}

// Server is the fake Slack.
type Server struct {
	*slacktest.Server

	mu          sync.Mutex
	seq         int
	messages    []*Message
	ephemeral   []string
	responses   []string // texts posted to response URLs
	uploads     []Upload
	pendingUp   map[string]Upload // by file ID, before completion
	calls       map[string]int
	files       []File
	groups      map[string][]string
	rateLimit   map[string]int // method -> 429 answers still to give
	failures    map[string]string
	wsConns     []*websocket.Conn
	wsAcks      chan Ack
	connections int
	views       []OpenedView
	groupGate   chan struct{} // usergroups.users.list waits for it when set
}

// Ack is a Socket Mode acknowledgement the bot sent.
type Ack struct {
	EnvelopeID string          `json:"envelope_id"`
	Payload    json.RawMessage `json:"payload"`
	At         time.Time       `json:"-"`
}

// New starts a fake Slack; Close it when done.
func New() *Server {
	s := &Server{
		pendingUp: map[string]Upload{}, calls: map[string]int{}, groups: map[string][]string{},
		rateLimit: map[string]int{}, failures: map[string]string{}, wsAcks: make(chan Ack, 1000),
	}
	s.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		for _, m := range []struct {
			name string
			h    http.HandlerFunc
		}{
			{"chat.postMessage", s.postMessage},
			{"chat.update", s.update},
			{"chat.postEphemeral", s.postEphemeral},
			{"files.getUploadURLExternal", s.getUploadURL},
			{"files.completeUploadExternal", s.completeUpload},
			{"files.list", s.filesList},
			{"usergroups.users.list", s.groupMembers},
			{"conversations.replies", s.replies},
			{"apps.connections.open", s.connectionsOpen},
			{"files.info", s.fileInfo},
			{"views.open", s.openView},
		} {
			c.Handle("/"+m.name, s.api(m.name, m.h))
		}
		c.Handle("/upload/", s.upload)
		c.Handle("/download/", s.download)
		c.Handle("/response/", s.response)
		c.Handle("/socket", s.socket)
	})
	s.Start()
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	for _, c := range s.wsConns {
		c.Close()
	}
	s.mu.Unlock()
	s.Stop()
}

// APIURL is the URL to give slack.OptionAPIURL (it ends with a slash).
func (s *Server) APIURL() string { return s.GetAPIURL() }

func (s *Server) base() string { return strings.TrimSuffix(s.GetAPIURL(), "/") }

// ResponseURL is a response_url the fake records posts to.
func (s *Server) ResponseURL(id string) string { return s.base() + "/response/" + id }

// RateLimit makes the next n calls of method answer 429 with Retry-After: 1.
func (s *Server) RateLimit(method string, n int) {
	s.mu.Lock()
	s.rateLimit[method] = n
	s.mu.Unlock()
}

// Fail makes every call of method answer ok:false with code (e.g. not_in_channel).
func (s *Server) Fail(method, code string) {
	s.mu.Lock()
	s.failures[method] = code
	s.mu.Unlock()
}

// AddFile shares a file in a channel.
func (s *Server) AddFile(f File) {
	s.mu.Lock()
	s.files = append(s.files, f)
	s.mu.Unlock()
}

// SetGroup sets a user group's members.
func (s *Server) SetGroup(id string, members ...string) {
	s.mu.Lock()
	s.groups[id] = members
	s.mu.Unlock()
}

// Messages returns copies of every posted message, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = *m
		out[i].Edits = slices.Clone(m.Edits)
	}
	return out
}

// Parents returns the messages that are not thread replies.
func (s *Server) Parents() []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// Replies returns the replies in a thread, in order.
func (s *Server) Replies(threadTS string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.ThreadTS == threadTS {
			out = append(out, m)
		}
	}
	return out
}

// Uploads returns the completed uploads.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.uploads)
}

// Responses returns the texts posted to response URLs.
func (s *Server) Responses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}

// Calls returns how often each Web API method was called (429s included).
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// ResetCalls zeroes the call counts.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	s.calls = map[string]int{}
	s.mu.Unlock()
}

func (s *Server) api(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[name]++
		limited := s.rateLimit[name] > 0
		if limited {
			s.rateLimit[name]--
		}
		code := s.failures[name]
		s.mu.Unlock()
		if limited {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		if code != "" {
			writeJSON(w, map[string]any{"ok": false, "error": code})
			return
		}
		if err := r.ParseMultipartForm(32 << 20); err != nil && err != http.ErrNotMultipart {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) nextTS() string {
	s.seq++
	return fmt.Sprintf("1700000000.%06d", s.seq)
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	m := &Message{
		Channel: r.FormValue("channel"), ThreadTS: r.FormValue("thread_ts"), Text: r.FormValue("text"),
		Blocks: r.FormValue("blocks"), Broadcast: r.FormValue("reply_broadcast") == "true", Metadata: r.FormValue("metadata"),
	}
	if m.Channel == "" {
		writeJSON(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	s.mu.Lock()
	m.TS = s.nextTS()
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS})
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	ch, ts := r.FormValue("channel"), r.FormValue("ts")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.messages {
		if m.Channel == ch && m.TS == ts {
			m.Edits = append(m.Edits, Edit{Text: r.FormValue("text"), Blocks: r.FormValue("blocks")})
			writeJSON(w, map[string]any{"ok": true, "channel": ch, "ts": ts, "text": r.FormValue("text")})
			return
		}
	}
	writeJSON(w, map[string]any{"ok": false, "error": "message_not_found"})
}

func (s *Server) postEphemeral(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ephemeral = append(s.ephemeral, r.FormValue("text"))
	ts := s.nextTS()
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true, "message_ts": ts})
}

func (s *Server) getUploadURL(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("F%06d", s.seq)
	s.pendingUp[id] = Upload{ID: id, Name: r.FormValue("filename")}
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true, "upload_url": s.base() + "/upload/" + id, "file_id": id})
}

// upload receives the bytes (raw or a multipart form), as files.slack.com does.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/upload/")
	var n int64
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			c, _ := io.Copy(io.Discard, p)
			n += c
		}
	} else {
		n, _ = io.Copy(io.Discard, r.Body)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	up, ok := s.pendingUp[id]
	if !ok {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	}
	up.Size = int(n)
	s.pendingUp[id] = up
	fmt.Fprint(w, "OK - ", n)
}

func (s *Server) completeUpload(w http.ResponseWriter, r *http.Request) {
	var files []slack.FileSummary
	if err := json.Unmarshal([]byte(r.FormValue("files")), &files); err != nil || len(files) == 0 {
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_arguments"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, f := range files {
		up, ok := s.pendingUp[f.ID]
		if !ok || up.Size == 0 {
			writeJSON(w, map[string]any{"ok": false, "error": "file_not_found"})
			return
		}
		delete(s.pendingUp, f.ID)
		up.Channel, up.ThreadTS, up.Comment = r.FormValue("channel_id"), r.FormValue("thread_ts"), r.FormValue("initial_comment")
		up.TS = s.nextTS()
		s.uploads = append(s.uploads, up)
		out = append(out, map[string]any{"id": f.ID, "title": f.Title})
	}
	writeJSON(w, map[string]any{"ok": true, "files": out})
}

func (s *Server) filesList(w http.ResponseWriter, r *http.Request) {
	ch := r.FormValue("channel")
	s.mu.Lock()
	var out []map[string]any
	for i := len(s.files) - 1; i >= 0; i-- { // newest first, as Slack lists them
		f := s.files[i]
		if ch != "" && f.Channel != ch {
			continue
		}
		size := f.Size
		if size == 0 {
			size = len(f.Data)
		}
		out = append(out, map[string]any{
			"id": f.ID, "name": f.Name, "size": size, "created": f.Created.Unix(),
			"url_private_download": s.base() + "/download/" + f.ID, "channels": []string{f.Channel},
		})
	}
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true, "files": out, "paging": map[string]int{"count": len(out), "total": len(out), "page": 1, "pages": 1}})
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer xoxb-") {
		http.Error(w, "no bot token", http.StatusUnauthorized)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/download/")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["download"]++
	for _, f := range s.files {
		if f.ID == id {
			_, _ = w.Write(f.Data)
			return
		}
	}
	http.NotFound(w, r)
}

// Downloads is how many files were downloaded.
func (s *Server) Downloads() int { return s.Calls()["download"] }

// HoldGroupLookups makes usergroups.users.list wait until release is
// called (a slow lookup whose end the test decides).
func (s *Server) HoldGroupLookups() (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.groupGate = gate
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// GroupLookups is how many usergroups.users.list calls came in (held or not).
func (s *Server) GroupLookups() int { return s.Calls()["usergroups.users.list"] }

func (s *Server) groupMembers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	gate := s.groupGate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	members, ok := s.groups[r.FormValue("usergroup")]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, map[string]any{"ok": false, "error": "no_such_subteam"})
		return
	}
	writeJSON(w, map[string]any{"ok": true, "users": members})
}

func (s *Server) replies(w http.ResponseWriter, r *http.Request) {
	ch, ts := r.FormValue("channel"), r.FormValue("ts")
	type entry struct {
		ts  string
		msg map[string]any
	}
	var all []entry
	for _, m := range s.Messages() {
		if m.Channel != ch || (m.TS != ts && m.ThreadTS != ts) {
			continue
		}
		msg := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
		if m.ThreadTS != "" {
			msg["thread_ts"] = m.ThreadTS
		}
		if m.Metadata != "" {
			msg["metadata"] = json.RawMessage(m.Metadata)
		}
		all = append(all, entry{m.TS, msg})
	}
	// A file shared into the thread is a message carrying it, as in Slack.
	for _, u := range s.Uploads() {
		if u.Channel == ch && u.ThreadTS == ts {
			all = append(all, entry{u.TS, map[string]any{"type": "message", "ts": u.TS, "thread_ts": ts, "text": u.Comment,
				"files": []map[string]any{{"id": u.ID, "name": u.Name, "title": u.Name}}}})
		}
	}
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.ts, b.ts) })
	out := make([]map[string]any, len(all))
	for i, e := range all {
		out[i] = e.msg
	}
	writeJSON(w, map[string]any{"ok": true, "messages": out, "has_more": false})
}

// Permalink is the link files.info gives for an uploaded file.
func (s *Server) Permalink(fileID string) string { return "https://fake.slack.com/files/" + fileID }

func (s *Server) fileInfo(w http.ResponseWriter, r *http.Request) {
	id := r.FormValue("file")
	s.mu.Lock()
	for _, f := range s.files {
		if f.ID == id {
			size := f.Size
			if size == 0 {
				size = len(f.Data)
			}
			s.mu.Unlock()
			writeJSON(w, map[string]any{"ok": true, "file": map[string]any{"id": f.ID, "name": f.Name, "title": f.Name, "size": size,
				"channels": []string{f.Channel}, "url_private_download": s.base() + "/download/" + f.ID, "permalink": s.Permalink(f.ID)}})
			return
		}
	}
	s.mu.Unlock()
	for _, u := range s.Uploads() {
		if u.ID == id {
			writeJSON(w, map[string]any{"ok": true, "file": map[string]any{"id": u.ID, "name": u.Name, "title": u.Name, "permalink": s.Permalink(u.ID)}})
			return
		}
	}
	writeJSON(w, map[string]any{"ok": false, "error": "file_not_found"})
}

// OpenedView is a modal the bot opened with views.open.
type OpenedView struct {
	TriggerID string
	View      json.RawMessage
}

// Views returns the modals opened, in order.
func (s *Server) Views() []OpenedView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.views)
}

func (s *Server) openView(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TriggerID string          `json:"trigger_id"`
		View      json.RawMessage `json:"view"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.TriggerID == "" {
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_arguments"})
		return
	}
	s.mu.Lock()
	s.views = append(s.views, OpenedView{TriggerID: body.TriggerID, View: body.View})
	id := fmt.Sprintf("V%06d", len(s.views))
	s.mu.Unlock()
	var view map[string]any
	_ = json.Unmarshal(body.View, &view)
	view["id"] = id
	writeJSON(w, map[string]any{"ok": true, "view": view})
}

func (s *Server) response(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text string `json:"text"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	s.responses = append(s.responses, body.Text)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) connectionsOpen(w http.ResponseWriter, r *http.Request) {
	u, _ := url.Parse(s.base())
	u.Scheme = "ws"
	u.Path = "/socket"
	writeJSON(w, map[string]any{"ok": true, "url": u.String()})
}

// upgrader accepts the Origin slack-go sends (https://api.slack.com), as Slack does.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// socket is the Socket Mode WebSocket: it says hello, then carries the
// envelopes Send writes and collects the acks.
func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	hello := map[string]any{"type": "hello", "num_connections": 1, "connection_info": map[string]string{"app_id": "A1"}}
	s.mu.Lock()
	s.wsConns = append(s.wsConns, c)
	s.connections++
	err = c.WriteJSON(hello)
	s.mu.Unlock()
	if err != nil {
		return
	}
	// Slack pings every connection; slack-go reconnects when pings stop.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)) != nil {
					return
				}
			}
		}
	}()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		var a Ack
		if json.Unmarshal(data, &a) == nil && a.EnvelopeID != "" {
			a.At = time.Now()
			s.wsAcks <- a
		}
	}
}

// Connected reports whether a Socket Mode client is connected.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.wsConns) > 0
}

// Send writes a Socket Mode envelope to the newest connection.
func (s *Server) Send(envelope any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.wsConns) == 0 {
		return fmt.Errorf("no socket mode client is connected")
	}
	return s.wsConns[len(s.wsConns)-1].WriteJSON(envelope)
}

// Acks delivers the Socket Mode acknowledgements as they come.
func (s *Server) Acks() <-chan Ack { return s.wsAcks }

// SlashEnvelope is a Socket Mode slash_commands envelope.
func SlashEnvelope(id string, cmd slack.SlashCommand) map[string]any {
	return map[string]any{"type": "slash_commands", "envelope_id": id, "payload": cmd, "accepts_response_payload": true}
}

// InteractiveEnvelope is a Socket Mode interactive envelope.
func InteractiveEnvelope(id string, payload any) map[string]any {
	return map[string]any{"type": "interactive", "envelope_id": id, "payload": payload, "accepts_response_payload": false}
}
