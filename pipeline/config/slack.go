package config

import (
	"fmt"
	"strings"
	"time"
)

// Slack modes.
const (
	SlackModeSocket = "socket"
	SlackModeHTTP   = "http"
)

// SlackMaxUploadMiB is Slack's limit for one uploaded file (1 GB).
const SlackMaxUploadMiB = 1000

// Slack configures the Slack bot (`framefleet bot`). The tokens and the
// signing secret are secrets and come only from the environment
// (SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_SIGNING_SECRET, GITHUB_TOKEN).
type Slack struct {
	// Mode is socket (default: an outbound WebSocket, no public URL) or http
	// (Slack calls Listen's /slack/commands and /slack/interactivity).
	Mode   string `yaml:"mode"`
	Listen string `yaml:"listen"`
	// Command is the slash command's name as configured in the app.
	Command string `yaml:"command"`
	// AllowedChannels are channel IDs (C…, G…) where /render works; empty: any
	// channel the bot is in.
	AllowedChannels []string `yaml:"allowed_channels"`
	// AllowedUsers (U…, W…) and AllowedUsergroups (S…) may render; both
	// empty: everyone in the workspace.
	AllowedUsers      []string `yaml:"allowed_users"`
	AllowedUsergroups []string `yaml:"allowed_usergroups"`
	// Admins may cancel anyone's run (the requester always may cancel theirs).
	Admins []string `yaml:"admins"`
	// MaxFileMiB refuses larger source .blend files before they are downloaded.
	MaxFileMiB int `yaml:"max_file_mib"`
	// MaxUploadMiB: a larger video is linked instead of uploaded to Slack.
	MaxUploadMiB int `yaml:"max_upload_mib"`
	// Concurrency is how many runs the local engine renders at once; the
	// rest wait in the bot's queue and their threads show their position.
	Concurrency int `yaml:"concurrency"`
	// UpdateInterval is the least time between two edits of a run's message.
	UpdateInterval Duration `yaml:"update_interval"`
	// APIURL replaces https://slack.com/api/ (tests, proxies).
	APIURL string `yaml:"api_url"`
	// GitHubAPIURL is GitHub's API for owner/repo/path@ref sources
	// (GitHub Enterprise: https://HOST/api/v3/); empty: api.github.com.
	// Git LFS objects are asked from the same host (see GitHubLFSURL).
	GitHubAPIURL string `yaml:"github_api_url"`
	// Sources limits where sources may be fetched from.
	Sources SlackSources `yaml:"sources"`
}

// SlackSources are the places the bot may fetch a .blend from with its own
// credentials.
type SlackSources struct {
	// S3Buckets are the buckets (`renders`) or bucket prefixes
	// (`renders/shots/`) s3:// sources must be in; empty: s3:// sources
	// are refused.
	S3Buckets []string `yaml:"s3_buckets"`
}

// AllowsS3 reports whether s3://bucket/key is inside one of S3Buckets.
func (s SlackSources) AllowsS3(bucket, key string) bool {
	for _, entry := range s.S3Buckets {
		b, prefix, _ := strings.Cut(entry, "/")
		if b == bucket && strings.HasPrefix(key, prefix) {
			return true
		}
	}
	return false
}

// GitHubLFSURL is the Git server LFS objects of GitHub sources are asked
// from: the host of GitHubAPIURL (GitHub Enterprise serves its API at
// https://HOST/api/v3/ and Git at https://HOST/), else https://github.com.
// The token is only ever sent to the configured GitHub.
func (s Slack) GitHubLFSURL() string {
	api := strings.TrimRight(s.GitHubAPIURL, "/")
	if api == "" {
		return "https://github.com"
	}
	scheme, rest, _ := strings.Cut(api, "://")
	host, _, _ := strings.Cut(rest, "/")
	if host == "api.github.com" {
		return "https://github.com"
	}
	return scheme + "://" + host
}

// SlackDefaults are the slack section's built-in values.
func SlackDefaults() Slack {
	return Slack{
		Mode:           SlackModeSocket,
		Listen:         ":3000",
		Command:        "/render",
		MaxFileMiB:     512,
		MaxUploadMiB:   SlackMaxUploadMiB,
		Concurrency:    1,
		UpdateInterval: Duration(6 * time.Second),
	}
}

func slackKeys() []Key {
	return []Key{
		{"slack.mode", []string{"FRAMEFLEET_SLACK_MODE"}, "bot connection: socket (no public URL) or http"},
		{"slack.listen", []string{"FRAMEFLEET_SLACK_LISTEN"}, "address the bot listens on in http mode, e.g. :3000"},
		{"slack.command", []string{"FRAMEFLEET_SLACK_COMMAND"}, "the slash command's name, e.g. /render"},
		{"slack.allowed_channels", []string{"FRAMEFLEET_SLACK_ALLOWED_CHANNELS"}, "channel IDs where /render works, comma-separated (empty: any)"},
		{"slack.allowed_users", []string{"FRAMEFLEET_SLACK_ALLOWED_USERS"}, "user IDs who may render, comma-separated"},
		{"slack.allowed_usergroups", []string{"FRAMEFLEET_SLACK_ALLOWED_USERGROUPS"}, "user group IDs whose members may render, comma-separated"},
		{"slack.admins", []string{"FRAMEFLEET_SLACK_ADMINS"}, "user IDs who may cancel any run, comma-separated"},
		{"slack.max_file_mib", []string{"FRAMEFLEET_SLACK_MAX_FILE_MIB"}, "largest source .blend accepted, in MiB"},
		{"slack.max_upload_mib", []string{"FRAMEFLEET_SLACK_MAX_UPLOAD_MIB"}, "largest video uploaded to Slack (MiB); larger ones are linked"},
		{"slack.concurrency", []string{"FRAMEFLEET_SLACK_CONCURRENCY"}, "local engine: runs rendered at once (the rest queue)"},
		{"slack.update_interval", []string{"FRAMEFLEET_SLACK_UPDATE_INTERVAL"}, "least time between two edits of a run's message"},
		{"slack.api_url", []string{"FRAMEFLEET_SLACK_API_URL"}, "Slack Web API URL (default https://slack.com/api/)"},
		{"slack.github_api_url", []string{"FRAMEFLEET_SLACK_GITHUB_API_URL"}, "GitHub API URL for owner/repo/path@ref sources (GitHub Enterprise; LFS is asked from the same host)"},
		{"slack.sources.s3_buckets", []string{"FRAMEFLEET_SLACK_S3_BUCKETS"}, "buckets or bucket/prefix/ s3:// sources may come from, comma-separated (empty: none)"},
	}
}

func (c *Config) validateSlack(bad func(string, ...any)) {
	s := c.Slack
	switch s.Mode {
	case SlackModeSocket:
	case SlackModeHTTP:
		if s.Listen == "" {
			bad("slack.listen is empty: http mode needs an address to listen on, e.g. :3000")
		}
	default:
		bad("slack.mode %q is not known: use socket (no public URL needed) or http", s.Mode)
	}
	if !strings.HasPrefix(s.Command, "/") || len(s.Command) < 2 || strings.ContainsAny(s.Command, " \t") {
		bad("slack.command %q is not a slash command: give its name with the slash, e.g. /render", s.Command)
	}
	checkIDs := func(key string, ids []string, prefixes, what, where string) {
		for _, id := range ids {
			if !slackID(id, prefixes) {
				bad("slack.%s %q is not a %s ID: give the ID (%s…), %s", key, id, what, prefixes[:1], where)
			}
		}
	}
	checkIDs("allowed_channels", s.AllowedChannels, "CGD", "channel", "shown at the bottom of the channel's details, not its #name")
	checkIDs("allowed_users", s.AllowedUsers, "UW", "user", "from the person's profile: ⋮ > Copy member ID")
	checkIDs("admins", s.Admins, "UW", "user", "from the person's profile: ⋮ > Copy member ID")
	checkIDs("allowed_usergroups", s.AllowedUsergroups, "S", "user group", "from the group's page URL, not its @handle")
	if s.MaxFileMiB < 1 {
		bad("slack.max_file_mib %d is too small: give the largest .blend to accept in MiB, e.g. 512", s.MaxFileMiB)
	}
	if s.MaxUploadMiB < 1 || s.MaxUploadMiB > SlackMaxUploadMiB {
		bad("slack.max_upload_mib %d is out of range: Slack takes files up to %d MiB: give 1 to %d", s.MaxUploadMiB, SlackMaxUploadMiB, SlackMaxUploadMiB)
	}
	if s.Concurrency < 1 {
		bad("slack.concurrency %d is too small: give how many runs render at once, at least 1", s.Concurrency)
	}
	if d := time.Duration(s.UpdateInterval); d < time.Second {
		bad("slack.update_interval %s is too short: Slack allows about one edit per second per message: give at least 1s (5s or more is kind to busy channels)", d)
	}
	for _, entry := range s.Sources.S3Buckets {
		b, _, _ := strings.Cut(entry, "/")
		if b == "" || strings.HasPrefix(entry, "s3://") || strings.ContainsAny(b, " _:") || strings.ToLower(b) != b {
			bad("slack.sources.s3_buckets %q is not a bucket: give a bucket name (renders) or a bucket and prefix (renders/shots/), without s3://", entry)
		}
	}
	for _, u := range []struct{ key, val string }{{"slack.api_url", s.APIURL}, {"slack.github_api_url", s.GitHubAPIURL}} {
		if u.val != "" && !strings.HasPrefix(u.val, "https://") && !strings.HasPrefix(u.val, "http://") {
			bad("%s %q is not a URL: give it with its scheme, e.g. https://example.com/api/", u.key, u.val)
		}
	}
}

// slackID reports whether id looks like a Slack ID starting with one of prefixes.
func slackID(id, prefixes string) bool {
	if len(id) < 3 || !strings.ContainsRune(prefixes, rune(id[0])) {
		return false
	}
	for _, r := range id {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// String is a one-line summary for logs.
func (s Slack) String() string {
	return fmt.Sprintf("mode=%s command=%s channels=%d users=%d usergroups=%d admins=%d concurrency=%d s3_sources=%d",
		s.Mode, s.Command, len(s.AllowedChannels), len(s.AllowedUsers), len(s.AllowedUsergroups), len(s.Admins), s.Concurrency, len(s.Sources.S3Buckets))
}
