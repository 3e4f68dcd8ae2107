package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-github/v62/github"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/bot"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Secrets the bot reads from the environment only.
const (
	envBotToken      = "SLACK_BOT_TOKEN"
	envAppToken      = "SLACK_APP_TOKEN"
	envSigningSecret = "SLACK_SIGNING_SECRET"
	envGitHubToken   = "GITHUB_TOKEN"
)

func newBotCmd(g *globalFlags) *cobra.Command {
	var cf configFlags
	var blender string
	cmd := &cobra.Command{
		Use:   "bot",
		Short: "Run the Slack bot: /render in a channel, progress in a thread",
		Long: `Run the Slack bot. Teams type /render in a channel and watch the render in
a thread: a message with the progress, milestones as replies, and the video
playing in the thread when it is done. Settings come from framefleet.yaml's
slack: section; secrets from the environment: SLACK_BOT_TOKEN (xoxb-…),
SLACK_APP_TOKEN (xapp-…, socket mode), SLACK_SIGNING_SECRET (http mode) and
GITHUB_TOKEN (owner/repo/path.blend@ref sources). README.md ("In Slack") has the set-up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBot(cmd.Context(), g, &cf, blender, cmd)
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().StringVar(&blender, "blender", "", "Blender program local workers run (default: blender on PATH)")
	cmd.AddCommand(newBotManifestCmd())
	return cmd
}

func newBotManifestCmd() *cobra.Command {
	var mode, base, command string
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Print the Slack app manifest for a mode (socket, or http with --url)",
		Long: `Print the Slack app manifest to paste at api.slack.com/apps > Create New App >
From an app manifest. --mode socket (the default) turns Socket Mode on and
needs no public URL; --mode http turns it off and points the slash command,
the Cancel button and the "Render with framefleet" shortcut at --url, the
bot's public HTTPS address (its /slack/commands and /slack/interactivity).`,
		Example: "  framefleet bot manifest --mode http --url https://render.example.com > manifest.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if mode == config.SlackModeSocket && base != "" {
				return fmt.Errorf("--url is for --mode http: Socket Mode needs no public URL (drop --url, or add --mode http)")
			}
			data, err := bot.Manifest(mode, base, command)
			if err != nil {
				return fmt.Errorf("--mode %s: %w", mode, err)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&mode, "mode", config.SlackModeSocket, "socket or http (as slack.mode)")
	cmd.Flags().StringVar(&base, "url", "", "http mode: the bot's public HTTPS address, e.g. https://render.example.com")
	cmd.Flags().StringVar(&command, "command", config.SlackDefaults().Command, "the slash command's name (as slack.command)")
	return cmd
}

func runBot(ctx context.Context, g *globalFlags, cf *configFlags, blender string, cmd *cobra.Command) error {
	log := g.logger(cmd.ErrOrStderr())
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	sc := cfg.Slack
	botToken := os.Getenv(envBotToken)
	var missing []string
	if !strings.HasPrefix(botToken, "xoxb-") {
		missing = append(missing, envBotToken+" (the Bot User OAuth Token, xoxb-…, from OAuth & Permissions)")
	}
	appToken, secret := os.Getenv(envAppToken), os.Getenv(envSigningSecret)
	switch sc.Mode {
	case config.SlackModeSocket:
		if !strings.HasPrefix(appToken, "xapp-") {
			missing = append(missing, envAppToken+" (an App-Level Token, xapp-…, with connections:write, from Basic Information)")
		}
	case config.SlackModeHTTP:
		if secret == "" {
			missing = append(missing, envSigningSecret+" (the Signing Secret, from Basic Information)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the bot needs these environment variables: %s", strings.Join(missing, "; "))
	}

	f, err := fleet.Open(ctx, cfg, fleet.Options{Logger: log, Blender: blender, DefaultScope: pipeline.ScopeBot})
	if err != nil {
		return err
	}
	opts := []slack.Option{}
	if sc.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(strings.TrimRight(sc.APIURL, "/")+"/"))
	}
	if sc.Mode == config.SlackModeSocket {
		opts = append(opts, slack.OptionAppLevelToken(appToken))
	}
	api := slack.New(botToken, opts...)

	fetch := &bot.Fetcher{
		Slack:    api,
		MaxBytes: int64(sc.MaxFileMiB) << 20,
		LFSURL:   sc.GitHubLFSURL(), // the token goes only to the configured GitHub
		AllowS3:  sc.Sources.AllowsS3,
		OpenStore: func(ctx context.Context, uri string) (store.Store, error) {
			return store.Open(ctx, uri, f.Config.StoreOptions())
		},
	}
	if tok := os.Getenv(envGitHubToken); tok != "" {
		gh := github.NewClient(nil).WithAuthToken(tok)
		if sc.GitHubAPIURL != "" {
			u, err := url.Parse(strings.TrimRight(sc.GitHubAPIURL, "/") + "/")
			if err != nil {
				return fmt.Errorf("slack.github_api_url: %w", err)
			}
			gh.BaseURL = u
		}
		fetch.GitHub, fetch.GitHubToken = gh, tok
	}
	runs := bot.NewFleetRuns(f)
	b := bot.New(bot.Options{Config: sc, Slack: api, Runs: runs, Markers: runs, Fetcher: fetch, Logger: log})
	log.Info("starting the Slack bot", "slack", sc.String(), "engine", cfg.Engine, "store", f.Store.URI())
	if len(sc.AllowedChannels) == 0 && len(sc.AllowedUsers) == 0 && len(sc.AllowedUsergroups) == 0 {
		log.Warn("anyone in the workspace can render in any channel the bot is in: set slack.allowed_channels and slack.allowed_users or slack.allowed_usergroups to restrict it")
	}
	if err := b.Start(ctx); err != nil {
		return err
	}
	defer b.Wait()
	switch sc.Mode {
	case config.SlackModeHTTP:
		err = b.ServeHTTP(ctx, sc.Listen, secret)
	default:
		err = b.ServeSocket(ctx, socketmode.New(api))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
