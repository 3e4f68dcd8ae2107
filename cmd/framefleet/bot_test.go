package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/bot"
	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/internal/testenv"
)

const (
	botSecret  = "e2e-signing-secret"
	botChannel = "C0RENDERS"
	botUser    = "U0ALICE"
)

func writeBotConfig(t *testing.T, fs *slackfake.Server, mode, listen string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`engine: local
store: %s
render:
  workers: 1
slack:
  mode: %s
  listen: %q
  allowed_channels: [%s]
  allowed_users: [%s]
  update_interval: 1s
  api_url: %s
`, filepath.Join(dir, "renders"), mode, listen, botChannel, botUser, fs.APIURL())
	path := filepath.Join(dir, "framefleet.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startBot starts `framefleet bot` as a user would run it; the test's end
// stops it as a service manager would (SIGTERM, then SIGKILL).
func startBot(t *testing.T, config string) *proc {
	t.Helper()
	var p *proc
	t.Cleanup(func() { // registered first, so run last: after the bot ended
		if p != nil && t.Failed() {
			t.Logf("bot log:\n%s%s", p.stdout, p.stderr)
		}
	})
	cmd := exec.Command(framefleetBinary(t), "bot", "--config", config, "--log-format", "text", "-v")
	cmd.Env = append(os.Environ(), "SLACK_BOT_TOKEN=xoxb-e2e", "SLACK_APP_TOKEN=xapp-e2e", "SLACK_SIGNING_SECRET="+botSecret)
	p = startProc(t, cmd, 20*time.Second)
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func shareScene(t *testing.T, fs *slackfake.Server, opts map[string]any) {
	t.Helper()
	data, err := os.ReadFile(testenv.MakeScene(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	fs.AddFile(slackfake.File{ID: "F0SCENE", Name: "spin.blend", Channel: botChannel, Created: time.Now(), Data: data})
}

func finalReplies(fs *slackfake.Server, thread string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range fs.Replies(thread) {
		if strings.Contains(m.Metadata, "framefleet_final") {
			out = append(out, m)
		}
	}
	return out
}

func uploadsNamed(fs *slackfake.Server, thread, suffix string) []slackfake.Upload {
	var out []slackfake.Upload
	for _, u := range fs.Uploads() {
		if u.ThreadTS == thread && strings.HasSuffix(u.Name, suffix) {
			out = append(out, u)
		}
	}
	return out
}

// TestBotRendersIntoThread: a signed /render (HTTP mode) of a .blend shared
// in the channel renders for real with the local engine; the thread gets its
// milestones, the video plays in it and the preview GIF is there too.
func TestBotRendersIntoThread(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	fs := slackfake.New()
	t.Cleanup(fs.Close)
	shareScene(t, fs, map[string]any{"start": 1, "end": 3})
	addr := freeAddr(t)
	startBot(t, writeBotConfig(t, fs, "http", addr))
	eventually(t, 20*time.Second, "the bot to listen", func() bool {
		resp, err := http.Get("http://" + addr + bot.PathHealth)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	form := url.Values{"team_id": {"T0"}, "channel_id": {botChannel}, "user_id": {botUser}, "command": {"/render"},
		"text": {"file frames=1-3 resolution=50 samples=1"}, "response_url": {fs.ResponseURL("e2e")}}
	body := form.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+bot.PathCommands, strings.NewReader(body))
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", bot.Sign(botSecret, ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ack struct{ Text string }
	_ = json.NewDecoder(resp.Body).Decode(&ack)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(ack.Text, "On it") {
		t.Fatalf("ack: %d %q", resp.StatusCode, ack.Text)
	}

	eventually(t, 4*time.Minute, "the final reply", func() bool {
		ps := fs.Parents()
		return len(ps) == 1 && len(finalReplies(fs, ps[0].TS)) == 1 && len(uploadsNamed(fs, ps[0].TS, ".gif")) == 1
	})
	parent := fs.Parents()[0]
	var texts []string
	for _, m := range fs.Replies(parent.TS) {
		texts = append(texts, m.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"Submitted run `", "3 frames"} {
		if !strings.Contains(all, want) {
			t.Errorf("thread lacks %q:\n%s", want, all)
		}
	}
	final := finalReplies(fs, parent.TS)[0]
	if !strings.Contains(final.Text, "Done") || !final.Broadcast {
		t.Errorf("final reply %q (broadcast %v)", final.Text, final.Broadcast)
	}
	video := uploadsNamed(fs, parent.TS, ".mp4")
	if len(video) != 1 || video[0].Size < 1000 || video[0].Channel != botChannel {
		t.Errorf("video uploads into the thread: %+v", video)
	}
	var frames []slackfake.Upload
	for _, u := range fs.Uploads() {
		if strings.HasPrefix(u.Name, "frame-") && u.ThreadTS == parent.TS {
			frames = append(frames, u)
		}
	}
	if len(frames) != 1 || !strings.Contains(frames[0].Comment, "First frame rendered: frame ") {
		t.Errorf("the first frame is not shown in the thread: %+v", fs.Uploads())
	}
	if len(frames) == 1 {
		last := parent.Edits[len(parent.Edits)-1]
		if !strings.Contains(last.Blocks, `"slack_file":{"id":"`+frames[0].ID+`"}`) {
			t.Errorf("the parent does not show the frame: %s", last.Blocks)
		}
	}
	if firstFrameReports(fs) != 1 {
		t.Errorf("no first-frame milestone; uploads %+v", fs.Uploads())
	}
	last := parent.Edits[len(parent.Edits)-1]
	if !strings.Contains(last.Text, "Rendered") || strings.Contains(last.Blocks, bot.ActionCancel) {
		t.Errorf("parent's last edit %q still offers Cancel or is not done", last.Text)
	}
	if n := fs.Calls()["chat.update"]; n > 30 {
		t.Errorf("%d edits of the parent for a 3-frame render", n)
	}
}

// TestBotResumesAfterSIGKILL: the bot killed with SIGKILL mid-render and
// started again finishes the same thread: one parent, updated to done, one
// final reply, one video.
func TestBotResumesAfterSIGKILL(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	fs := slackfake.New()
	t.Cleanup(fs.Close)
	shareScene(t, fs, map[string]any{"start": 1, "end": 8, "width": 160, "height": 90, "samples": 8})
	config := writeBotConfig(t, fs, "socket", "")
	first := startBot(t, config)
	eventually(t, 20*time.Second, "the socket mode connection", fs.Connected)
	cmd := slack.SlashCommand{TeamID: "T0", ChannelID: botChannel, UserID: botUser, Command: "/render",
		Text: "file chunk=2", ResponseURL: fs.ResponseURL("k1")}
	if err := fs.Send(slackfake.SlashEnvelope("env-1", cmd)); err != nil {
		t.Fatal(err)
	}
	select {
	case ack := <-fs.Acks():
		if !strings.Contains(string(ack.Payload), "On it") {
			t.Fatalf("ack %s", ack.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ack")
	}
	eventually(t, 3*time.Minute, "the first frame", func() bool { return firstFrameReports(fs) > 0 })
	// The watcher writes the progress to the record before it sends the
	// event the bot posts, so once the milestone is posted the record holds
	// the frame, and a bot killed now must not post it again on resume.
	if runs := listBotRuns(t, config); len(runs) != 1 || runs[0].Progress.FramesDone == 0 {
		t.Fatalf("first frame posted while the run's record holds %+v: the record must be written first", runs)
	}
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-first.done
	parent := fs.Parents()[0]
	if len(finalReplies(fs, parent.TS)) != 0 {
		t.Fatal("the render finished before the kill, so nothing was resumed: make the scene slower")
	}
	// The killed bot ran on this machine and is gone: its run is interrupted
	// at once, not when its lease lapses, so the new bot resumes it at once.
	if runs := listBotRuns(t, config); len(runs) != 1 || runs[0].State != "interrupted" {
		t.Fatalf("runs after the kill: %+v; want the one run, interrupted", runs)
	}

	startBot(t, config)
	eventually(t, 5*time.Minute, "the resumed run's final reply", func() bool {
		return len(finalReplies(fs, parent.TS)) == 1 && len(uploadsNamed(fs, parent.TS, ".gif")) == 1
	})
	time.Sleep(2 * time.Second) // a duplicate would come now
	if ps := fs.Parents(); len(ps) != 1 {
		t.Errorf("%d parent messages, want 1 (no duplicate thread)", len(ps))
	}
	if n := len(finalReplies(fs, parent.TS)); n != 1 {
		t.Errorf("%d final replies, want 1", n)
	}
	if n := len(uploadsNamed(fs, parent.TS, ".mp4")); n != 1 {
		t.Errorf("%d videos uploaded, want 1", n)
	}
	edits := fs.Parents()[0].Edits
	if last := edits[len(edits)-1]; !strings.Contains(last.Text, "Rendered") {
		t.Errorf("the parent's last edit is %q, want it done", last.Text)
	}
	if firstFrames := firstFrameReports(fs); firstFrames != 1 {
		t.Errorf("first frame reported %d times", firstFrames)
	}
}

// botRun is a run as `framefleet runs --json` lists it.
type botRun struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Progress struct {
		FramesDone int `json:"frames_done"`
	} `json:"progress"`
}

// listBotRuns lists the runs of the bot's store, as `framefleet runs` does.
func listBotRuns(t *testing.T, config string) []botRun {
	t.Helper()
	// The bot's runs are in its trust scope (bot); the CLI lists the one it is given.
	runsCmd := exec.Command(framefleetBinary(t), "runs", "--config", config, "--json")
	runsCmd.Env = append(os.Environ(), "FRAMEFLEET_SCOPE=bot")
	listed, err := runsCmd.Output()
	if err != nil {
		t.Fatalf("runs: %v", err)
	}
	var page struct {
		Runs []botRun `json:"runs"`
	}
	if err := json.Unmarshal(listed, &page); err != nil {
		t.Fatalf("runs --json: %v\n%s", err, listed)
	}
	return page.Runs
}

// firstFrameReports counts first-frame milestones (a reply, or a thumbnail
// uploaded with the milestone as its comment).
func firstFrameReports(fs *slackfake.Server) int {
	n := 0
	for _, u := range fs.Uploads() {
		if strings.Contains(u.Comment, "First frame rendered: frame ") {
			n++
		}
	}
	for _, m := range fs.Messages() {
		if strings.Contains(m.Text, "First frame rendered: frame ") {
			n++
		}
	}
	return n
}

// TestBotManifestCommand: `framefleet bot manifest` prints the manifest for
// each mode, and refuses an HTTP manifest without the bot's address.
func TestBotManifestCommand(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		code    int
		want    string // in stdout
		wantErr string // in stderr
	}{
		{[]string{"bot", "manifest"}, 0, "socket_mode_enabled: true", ""},
		{[]string{"bot", "manifest", "--mode", "http", "--url", "https://render.example.com"}, 0, "request_url: https://render.example.com/slack/interactivity", ""},
		{[]string{"bot", "manifest", "--mode", "http"}, 1, "", "give --url https://host"},
		{[]string{"bot", "manifest", "--url", "https://render.example.com"}, 1, "", "--url is for --mode http"},
	} {
		var out, errOut strings.Builder
		code := run(t.Context(), tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String(), tc.want) || !strings.Contains(errOut.String(), tc.wantErr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d with %q / %q", tc.args, code, clipText(out.String()), errOut.String(), tc.code, tc.want, tc.wantErr)
		}
	}
	want, _ := bot.Manifest("http", "https://render.example.com", "/render")
	var out strings.Builder
	run(t.Context(), []string{"bot", "manifest", "--mode", "http", "--url", "https://render.example.com"}, &out, &strings.Builder{})
	if out.String() != string(want) {
		t.Error("the command's manifest differs from bot.Manifest's")
	}
}

func clipText(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
