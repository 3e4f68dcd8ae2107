package config_test

import (
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline/config"
)

func TestSlackValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *config.Slack)
		want   string // "" = valid
	}{
		{"defaults", func(s *config.Slack) {}, ""},
		{"http with listen", func(s *config.Slack) { s.Mode = "http" }, ""},
		{"unknown mode", func(s *config.Slack) { s.Mode = "websocket" }, `slack.mode "websocket" is not known`},
		{"http without listen", func(s *config.Slack) { s.Mode, s.Listen = "http", "" }, "slack.listen is empty"},
		{"channel name", func(s *config.Slack) { s.AllowedChannels = []string{"#renders"} }, `slack.allowed_channels "#renders" is not a channel ID`},
		{"user name", func(s *config.Slack) { s.AllowedUsers = []string{"@alice"} }, `slack.allowed_users "@alice" is not a user ID`},
		{"group handle", func(s *config.Slack) { s.AllowedUsergroups = []string{"U0ALICE"} }, "is not a user group ID"},
		{"ids", func(s *config.Slack) {
			s.AllowedChannels, s.AllowedUsers, s.AllowedUsergroups, s.Admins = []string{"C0123", "G0456"}, []string{"U0A", "W0B"}, []string{"S0C"}, []string{"U0D"}
		}, ""},
		{"upload above Slack's limit", func(s *config.Slack) { s.MaxUploadMiB = 2000 }, "slack.max_upload_mib 2000 is out of range"},
		{"no concurrency", func(s *config.Slack) { s.Concurrency = 0 }, "slack.concurrency 0 is too small"},
		{"edits too often", func(s *config.Slack) { s.UpdateInterval = config.Duration(100 * 1e6) }, "slack.update_interval 100ms is too short"},
		{"command without slash", func(s *config.Slack) { s.Command = "render" }, `slack.command "render" is not a slash command`},
		{"api url without scheme", func(s *config.Slack) { s.APIURL = "slack.example.com/api" }, "slack.api_url"},
		{"s3 sources", func(s *config.Slack) { s.Sources.S3Buckets = []string{"renders", "assets/shots/"} }, ""},
		{"s3 source as a URL", func(s *config.Slack) { s.Sources.S3Buckets = []string{"s3://renders"} }, `slack.sources.s3_buckets "s3://renders" is not a bucket`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Defaults()
			tc.change(&c.Slack)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSlackFromFileAndEnvironment(t *testing.T) {
	c, err := config.Parse("framefleet.yaml", []byte("slack:\n  mode: HTTP\n  allowed_channels: [C01, C02]\n  concurrency: 2\n  update_interval: 10s\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FRAMEFLEET_SLACK_ALLOWED_USERS": "U01, U02", "FRAMEFLEET_SLACK_MAX_FILE_MIB": "64"}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	s := c.Slack
	if s.Mode != "http" || len(s.AllowedChannels) != 2 || s.Concurrency != 2 || s.UpdateInterval.String() != "10s" ||
		strings.Join(s.AllowedUsers, ",") != "U01,U02" || s.MaxFileMiB != 64 || s.Command != "/render" {
		t.Errorf("slack section %+v", s)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if _, err := config.Parse("f.yaml", []byte("slack:\n  allowed_channel: [C01]\n")); err == nil || !strings.Contains(err.Error(), `did you mean "allowed_channels"`) {
		t.Errorf("typo in the slack section: %v", err)
	}
}

func TestSlackSources(t *testing.T) {
	src := config.SlackSources{S3Buckets: []string{"renders", "assets/shots/"}}
	for _, tc := range []struct {
		bucket, key string
		want        bool
	}{
		{"renders", "a/b.blend", true},
		{"assets", "shots/a.blend", true},
		{"assets", "private/a.blend", false},
		{"rendersx", "a.blend", false},
		{"other", "a.blend", false},
	} {
		if got := src.AllowsS3(tc.bucket, tc.key); got != tc.want {
			t.Errorf("s3://%s/%s allowed = %v, want %v", tc.bucket, tc.key, got, tc.want)
		}
	}
	for _, tc := range []struct{ api, want string }{
		{"", "https://github.com"},
		{"https://api.github.com/", "https://github.com"},
		{"https://github.example.com/api/v3/", "https://github.example.com"},
		{"http://127.0.0.1:8080/api/v3", "http://127.0.0.1:8080"},
	} {
		if got := (config.Slack{GitHubAPIURL: tc.api}).GitHubLFSURL(); got != tc.want {
			t.Errorf("LFS URL for %q = %q, want %q", tc.api, got, tc.want)
		}
	}
	c, err := config.Parse("f.yaml", []byte("slack:\n  sources:\n    s3_buckets: [renders]\n"))
	if err != nil || len(c.Slack.Sources.S3Buckets) != 1 {
		t.Fatalf("parse: %v %+v", err, c)
	}
	if err := c.ApplyEnv(func(k string) string {
		if k == "FRAMEFLEET_SLACK_S3_BUCKETS" {
			return "a, b/c/"
		}
		return ""
	}); err != nil || strings.Join(c.Slack.Sources.S3Buckets, " ") != "a b/c/" {
		t.Errorf("env: %v %v", err, c.Slack.Sources.S3Buckets)
	}
}
