package bot

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/framefleet/framefleet/internal/golden"
	"github.com/framefleet/framefleet/pipeline/config"
)

// TestShippedManifests: the manifests in bot/ are what `framefleet bot
// manifest` makes, Socket Mode is on only in the socket one, and the HTTP
// one has both request URLs and the shortcut.
func TestShippedManifests(t *testing.T) {
	for _, tc := range []struct {
		file, mode, url string
	}{
		{"manifest-socket.yaml", config.SlackModeSocket, ""},
		{"manifest-http.yaml", config.SlackModeHTTP, ExampleURL},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			got, err := Manifest(tc.mode, tc.url, "/render")
			if err != nil {
				t.Fatal(err)
			}
			if golden.Update() {
				if err := os.WriteFile(tc.file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			shipped, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if string(shipped) != string(got) {
				t.Errorf("%s differs from `framefleet bot manifest --mode %s` (run go test ./bot -update):\n%s", tc.file, tc.mode, got)
			}
			var m struct {
				Features struct {
					Shortcuts []struct {
						Type       string `yaml:"type"`
						CallbackID string `yaml:"callback_id"`
					} `yaml:"shortcuts"`
					SlashCommands []struct {
						URL string `yaml:"url"`
					} `yaml:"slash_commands"`
				} `yaml:"features"`
				Settings struct {
					Interactivity struct {
						IsEnabled  bool   `yaml:"is_enabled"`
						RequestURL string `yaml:"request_url"`
					} `yaml:"interactivity"`
					SocketMode bool `yaml:"socket_mode_enabled"`
				} `yaml:"settings"`
			}
			if err := yaml.Unmarshal(got, &m); err != nil {
				t.Fatal(err)
			}
			if m.Settings.SocketMode != (tc.mode == config.SlackModeSocket) {
				t.Errorf("socket_mode_enabled = %v in %s mode", m.Settings.SocketMode, tc.mode)
			}
			wantCmd, wantInt := "", ""
			if tc.mode == config.SlackModeHTTP {
				wantCmd, wantInt = ExampleURL+PathCommands, ExampleURL+PathInteractivity
			}
			if m.Features.SlashCommands[0].URL != wantCmd || m.Settings.Interactivity.RequestURL != wantInt || !m.Settings.Interactivity.IsEnabled {
				t.Errorf("URLs %q and %q, want %q and %q", m.Features.SlashCommands[0].URL, m.Settings.Interactivity.RequestURL, wantCmd, wantInt)
			}
			if len(m.Features.Shortcuts) != 1 || m.Features.Shortcuts[0].Type != "message" || m.Features.Shortcuts[0].CallbackID != CallbackRenderFile {
				t.Errorf("shortcuts %+v", m.Features.Shortcuts)
			}
		})
	}
}

func TestManifestRefusals(t *testing.T) {
	for _, tc := range []struct{ mode, url, want string }{
		{config.SlackModeHTTP, "", "give --url https://host"},
		{config.SlackModeHTTP, "http://plain.example.com", "HTTPS"},
		{"webhook", "", "socket (no public URL needed) or http"},
	} {
		if _, err := Manifest(tc.mode, tc.url, "/render"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want %q", tc.mode, tc.url, err, tc.want)
		}
	}
}
