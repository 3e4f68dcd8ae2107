package bot

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/internal/testenv"
)

var plainText = regexp.MustCompile(`"type":"plain_text","text":"(\\.|[^"\\])*"`)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<!here> huge.blend", "&lt;!here&gt; huge.blend"},
		{"@everyone look", "@\u2060everyone look"},
		{"hi @Channel and @here", "hi @\u2060Channel and @\u2060here"},
		{"<http://x|y>", "&lt;http://x|y&gt;"},
		{"<@U123> & `code`", "&lt;@U123&gt; &amp; 'code'"},
		{strings.Repeat("a", 300), strings.Repeat("a", 300)}, // never shortened
		{"bob@example.com", "bob@example.com"},
	} {
		if got := esc(tc.in); got != tc.want {
			t.Errorf("esc(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestInjectionsAreEscaped: files whose names try to notify the channel
// or make a link are shown as text in every message, reply and edit.
func TestInjectionsAreEscaped(t *testing.T) {
	demo, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "demo.blend"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"<!here> huge.blend", "@everyone.blend", "<http://x|y>.blend", "<!channel>@here.blend"} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.useFastEngine(&fastEngine{duration: time.Second})
			h.slack.AddFile(slackfake.File{ID: "F0BAD", Name: name, Channel: testChannel, Created: time.Now(), Data: demo})
			h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-2"), testSecret, time.Now())
			eventually(t, 30*time.Second, "the final reply", func() bool {
				ps := h.slack.Parents()
				return len(ps) == 1 && len(finalOf(h, ps[0].TS)) == 1
			})
			var all []string
			for _, m := range h.slack.Messages() {
				all = append(all, m.Text, m.Blocks)
				for _, e := range m.Edits {
					all = append(all, e.Text, e.Blocks)
				}
			}
			for _, r := range h.slack.Responses() {
				all = append(all, r)
			}
			// plain_text (the header) is never parsed for mentions or links.
			text := plainText.ReplaceAllString(strings.Join(all, "\n"), "")
			if !strings.Contains(text, "huge.blend") && !strings.Contains(text, "everyone") && !strings.Contains(text, "x|y") && !strings.Contains(text, "here.blend") {
				t.Fatalf("the file's name is not shown at all:\n%s", text)
			}
			for _, bad := range []string{"<!here>", "<!channel>", "<http://x|y>", `\u003c!here\u003e`, `\u003chttp://x|y\u003e`, "@everyone", "@here"} {
				if strings.Contains(text, bad) {
					t.Errorf("%q reaches Slack unescaped:\n%s", bad, text)
				}
			}
		})
	}
}
