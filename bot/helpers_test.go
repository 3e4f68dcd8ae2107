package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
)

const (
	testSecret  = "8f742231b10e8888abcd99yyyzzz85a5"
	testChannel = "C0RENDERS"
	testUser    = "U0ALICE"
)

// harness is a bot on a fake Slack with real durable runs in a directory store.
type harness struct {
	t      testing.TB
	slack  *slackfake.Server
	bot    *Bot
	runs   *FleetRuns
	http   *httptest.Server
	cfg    config.Slack
	cancel context.CancelFunc
	sleeps *sleepLog
	// stopBot stops the bot (not the fleet), as a killed process would.
	stopBot context.CancelFunc
	handler atomic.Value // the current bot's http.Handler
}

type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return sleepCtx(ctx, min(d, 50*time.Millisecond)) // Retry-After is honoured, at test speed
}

func (s *sleepLog) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func newHarness(t testing.TB, change func(c *config.Config)) *harness {
	t.Helper()
	cfg := config.Defaults()
	cfg.Store = t.TempDir()
	cfg.Slack.UpdateInterval = config.Duration(time.Second)
	cfg.Slack.AllowedChannels = []string{testChannel}
	cfg.Slack.AllowedUsers = []string{testUser}
	cfg.Slack.MaxFileMiB = 1
	cfg.Slack.Sources.S3Buckets = []string{"bucket"}
	if change != nil {
		change(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	fs := slackfake.New()
	t.Cleanup(fs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, ok := t.(*testing.B); ok { // benchmarks measure the bot, not test logging
		log = slog.New(slog.DiscardHandler)
	}
	f, err := fleet.Open(ctx, cfg, fleet.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	api := slack.New("xoxb-test", slack.OptionAPIURL(fs.APIURL()))
	runs := NewFleetRuns(f)
	sl := &sleepLog{}
	b := New(Options{
		Config: cfg.Slack, Slack: api, Runs: runs, Markers: runs, Logger: log, Sleep: sl.sleep,
		Fetcher: &Fetcher{Slack: api, MaxBytes: int64(cfg.Slack.MaxFileMiB) << 20, Dir: t.TempDir(), AllowS3: cfg.Slack.Sources.AllowsS3},
	})
	botCtx, stopBot := context.WithCancel(ctx)
	if err := b.Start(botCtx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, slack: fs, bot: b, runs: runs, cfg: cfg.Slack, cancel: cancel, sleeps: sl, stopBot: stopBot}
	h.handler.Store(b.HTTPHandler(testSecret))
	h.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		h.http.Close()
		cancel()
		h.bot.Wait()
	})
	return h
}

// restart stops the bot as a killed process would (its background work
// ends mid-way) and starts a new one on the same store and Slack, which
// then serves the HTTP requests.
func (h *harness) restart() {
	h.t.Helper()
	h.stopBot()
	h.bot.Wait()
	nb := h.restartBot()
	ctx, stop := context.WithCancel(context.Background())
	h.t.Cleanup(stop)
	if err := nb.Start(ctx); err != nil {
		h.t.Fatal(err)
	}
	h.bot, h.stopBot = nb, stop
	h.handler.Store(nb.HTTPHandler(testSecret))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// command is a slash command's form as Slack sends it.
func (h *harness) command(user, channel, text string) url.Values {
	return url.Values{
		"token": {"deprecated"}, "team_id": {"T0TEAM"}, "channel_id": {channel}, "channel_name": {"renders"},
		"user_id": {user}, "user_name": {"alice"}, "command": {"/render"}, "text": {text},
		"response_url": {h.slack.ResponseURL("r1")}, "trigger_id": {fmt.Sprintf("%d.trigger", triggers.Add(1))}, "api_app_id": {"A0APP"},
	}
}

// testClient keeps connections open for bursts of concurrent requests, as
// Slack's own senders do.
var testClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}

// triggers numbers trigger IDs: Slack gives every invocation its own.
var triggers atomic.Int64

// post sends a form signed at ts with secret; it returns the status and body.
func (h *harness) post(path string, form url.Values, secret string, ts time.Time) (int, string) {
	h.t.Helper()
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, h.http.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", Sign(secret, stamp, []byte(body)))
	resp, err := testClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// ephemeral returns the text of an ephemeral JSON reply ("" for an empty one).
func ephemeral(t *testing.T, body string) string {
	t.Helper()
	if strings.TrimSpace(body) == "" {
		return ""
	}
	var r struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("reply is not JSON: %q", body)
	}
	if r.ResponseType != "ephemeral" {
		t.Errorf("reply is %q, want ephemeral", r.ResponseType)
	}
	return r.Text
}

func (h *harness) runCount() int {
	h.t.Helper()
	runs, err := h.runs.List(context.Background(), nil, 100)
	if err != nil {
		h.t.Fatal(err)
	}
	return len(runs)
}

// eventually polls cond until it holds or the time is up.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
