package bot

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/framefleet/framefleet/pipeline/config"
)

// CallbackRenderFile is the message shortcut's callback_id: "Render with
// framefleet" on a message carrying a .blend file.
const CallbackRenderFile = "render_file"

// ExampleURL stands in for the bot's public address in the shipped HTTP manifest.
const ExampleURL = "https://framefleet.example.com"

// Manifest returns the Slack app manifest for mode (socket or http). HTTP
// mode needs baseURL, the bot's public HTTPS address: Slack posts commands
// and clicks to its /slack/commands and /slack/interactivity, and Socket
// Mode is off (with it on, Slack sends nothing to those URLs).
func Manifest(mode, baseURL, command string) ([]byte, error) {
	if command == "" {
		command = config.SlackDefaults().Command
	}
	type slashCommand struct {
		Command      string `yaml:"command"`
		URL          string `yaml:"url,omitempty"`
		Description  string `yaml:"description"`
		UsageHint    string `yaml:"usage_hint"`
		ShouldEscape bool   `yaml:"should_escape"`
	}
	type shortcut struct {
		Name        string `yaml:"name"`
		Type        string `yaml:"type"`
		CallbackID  string `yaml:"callback_id"`
		Description string `yaml:"description"`
	}
	type interactivity struct {
		IsEnabled  bool   `yaml:"is_enabled"`
		RequestURL string `yaml:"request_url,omitempty"`
	}
	m := struct {
		Display struct {
			Name        string `yaml:"name"`
			Description string `yaml:"description"`
			Background  string `yaml:"background_color"`
		} `yaml:"display_information"`
		Features struct {
			BotUser struct {
				DisplayName  string `yaml:"display_name"`
				AlwaysOnline bool   `yaml:"always_online"`
			} `yaml:"bot_user"`
			Shortcuts     []shortcut     `yaml:"shortcuts"`
			SlashCommands []slashCommand `yaml:"slash_commands"`
		} `yaml:"features"`
		OAuth struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
		Settings struct {
			Interactivity interactivity `yaml:"interactivity"`
			OrgDeploy     bool          `yaml:"org_deploy_enabled"`
			SocketMode    bool          `yaml:"socket_mode_enabled"`
			TokenRotation bool          `yaml:"token_rotation_enabled"`
		} `yaml:"settings"`
	}{}
	m.Display.Name = "framefleet"
	m.Display.Description = "Render Blender scenes to video from a channel, and watch them in a thread."
	m.Display.Background = "#1d2b3a"
	m.Features.BotUser.DisplayName, m.Features.BotUser.AlwaysOnline = "framefleet", true
	m.Features.Shortcuts = []shortcut{{Name: "Render with framefleet", Type: "message", CallbackID: CallbackRenderFile,
		Description: "Render the .blend file of this message into its thread"}}
	cmd := slashCommand{Command: command, Description: "Render a .blend to video (try " + command + " help)",
		UsageHint: "<s3://… | owner/repo/path.blend@ref | file> [frames=1-100x2] [resolution=50]"}
	m.OAuth.Scopes.Bot = []string{
		"commands",         // the slash command and the message shortcut
		"chat:write",       // the render's message, its thread and updates
		"files:write",      // the video, preview and first frame into the thread
		"files:read",       // `file` sources, the shortcut's file, upload links
		"usergroups:read",  // slack.allowed_usergroups
		"channels:history", // restart safety: look for a final reply or video in a thread
		"groups:history",   // ... in private channels too
	}
	m.Settings.Interactivity.IsEnabled = true
	switch mode {
	case config.SlackModeSocket:
		m.Settings.SocketMode = true
	case config.SlackModeHTTP:
		u, err := url.Parse(baseURL)
		if baseURL == "" || err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("http mode needs the bot's public address: give --url https://host (Slack only calls HTTPS URLs), got %q", baseURL)
		}
		base := strings.TrimRight(baseURL, "/")
		cmd.URL = base + PathCommands
		m.Settings.Interactivity.RequestURL = base + PathInteractivity
	default:
		return nil, fmt.Errorf("mode %q is not known: use socket (no public URL needed) or http", mode)
	}
	m.Features.SlashCommands = []slashCommand{cmd}
	var buf bytes.Buffer
	header := "# Slack app manifest for framefleet's bot in Socket Mode (slack.mode: socket):\n" +
		"# api.slack.com/apps > Create New App > From an app manifest > paste this.\n" +
		"# No public URL is needed; make an app-level token (xapp-…) with connections:write.\n"
	if mode == config.SlackModeHTTP {
		header = "# Slack app manifest for framefleet's bot in HTTP mode (slack.mode: http):\n" +
			"# api.slack.com/apps > Create New App > From an app manifest > paste this.\n" +
			"# Socket Mode is off, so Slack posts to the request URLs below (the bot's HTTPS\n" +
			"# address); every request is checked with SLACK_SIGNING_SECRET.\n"
	}
	header += "# Made by `framefleet bot manifest`; README.md, \"In Slack\", has the set-up.\n"
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}
