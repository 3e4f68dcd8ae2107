package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// maxBodyBytes bounds a request body from Slack (commands and clicks are small).
const maxBodyBytes = 1 << 20

// Paths the HTTP mode serves (the manifest's request URLs).
const (
	PathCommands      = "/slack/commands"
	PathInteractivity = "/slack/interactivity"
	PathHealth        = "/healthz"
)

// HTTPHandler serves Slack's slash-command and interactivity requests. Every
// request must carry a valid signature made with signingSecret within five
// minutes; anything else gets 401 and has no effect.
func (b *Bot) HTTPHandler(signingSecret string) http.Handler {
	mux := http.NewServeMux()
	verified := func(next func(w http.ResponseWriter, r *http.Request, form url.Values)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			// A body that trickles in would hold a connection (and the
			// acknowledgement) open: it must arrive within bodyTimeout.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(b.bodyTimeout))
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				b.log.Warn("refused a request whose body came too slowly", "path", r.URL.Path, "remote", r.RemoteAddr)
				http.Error(w, "request body too slow", http.StatusRequestTimeout)
				return
			}
			if err != nil || len(body) > maxBodyBytes {
				http.Error(w, "body too large or unreadable", http.StatusBadRequest)
				return
			}
			if err := VerifyRequest(r.Header, body, signingSecret, b.now()); err != nil {
				b.log.Warn("refused an unsigned or stale request", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			if err := b.firstSeen(r.Context(), r.Header); err != nil {
				b.log.Warn("refused a replayed request", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			form, err := url.ParseQuery(string(body))
			if err != nil {
				http.Error(w, "body is not a form", http.StatusBadRequest)
				return
			}
			next(w, r, form)
		}
	}
	mux.HandleFunc(PathCommands, verified(func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if form.Get("ssl_check") == "1" { // Slack checking the certificate
			w.WriteHeader(http.StatusOK)
			return
		}
		sc := slack.SlashCommand{
			TeamID: form.Get("team_id"), ChannelID: form.Get("channel_id"), ChannelName: form.Get("channel_name"),
			UserID: form.Get("user_id"), UserName: form.Get("user_name"), Command: form.Get("command"),
			Text: form.Get("text"), ResponseURL: form.Get("response_url"), TriggerID: form.Get("trigger_id"),
			APIAppID: form.Get("api_app_id"),
		}
		writeReply(w, b.HandleCommand(r.Context(), sc))
	}))
	mux.HandleFunc(PathInteractivity, verified(func(w http.ResponseWriter, r *http.Request, form url.Values) {
		var ic slack.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &ic); err != nil {
			http.Error(w, "payload is not an interaction", http.StatusBadRequest)
			return
		}
		writeReply(w, b.HandleAction(r.Context(), ic))
	}))
	mux.HandleFunc(PathHealth, func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

func writeReply(w http.ResponseWriter, rep Reply) {
	body := rep.Body()
	if body == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// ServeHTTP runs HTTP mode on addr until ctx ends.
func (b *Bot) ServeHTTP(ctx context.Context, addr, signingSecret string) error {
	srv := &http.Server{Addr: addr, Handler: b.HTTPHandler(signingSecret), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 10*time.Second + b.bodyTimeout}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	b.log.Info("listening for Slack", "addr", addr, "commands", PathCommands, "interactivity", PathInteractivity)
	select {
	case err := <-errc:
		return fmt.Errorf("listen on %s: %w", addr, err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// ServeSocket runs Socket Mode with client (made from a slack.Client that
// has the app-level token) until ctx ends. Every envelope is acknowledged
// as soon as the command is parsed and authorised.
func (b *Bot) ServeSocket(ctx context.Context, client *socketmode.Client) error {
	errc := make(chan error, 1)
	go func() { errc <- client.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("socket mode: %w", err)
		case evt := <-client.Events:
			b.socketEvent(ctx, client, evt)
		}
	}
}

func (b *Bot) socketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnected:
		b.log.Info("connected to Slack (socket mode)")
	case socketmode.EventTypeConnectionError:
		b.log.Warn("socket mode connection error; reconnecting", "err", evt.Data)
	case socketmode.EventTypeSlashCommand:
		sc, ok := evt.Data.(slack.SlashCommand)
		if !ok || evt.Request == nil {
			return
		}
		// Acknowledge first, work after: envelopes arrive one at a time,
		// so a command waiting for a user group lookup would hold back the
		// acknowledgement of every command behind it (Slack allows 3 s).
		if !b.auth.decidesAtOnce(sc.ChannelID, sc.UserID) {
			b.ack(client, evt.Request, Reply{})
			b.spawn(func() {
				if rep := b.handleCommand(b.ctx, sc, lateLookupTimeout); rep.Text != "" {
					b.respond(b.ctx, sc.ResponseURL, rep.Text)
				}
			})
			return
		}
		rep := b.HandleCommand(ctx, sc)
		b.ack(client, evt.Request, rep)
	case socketmode.EventTypeInteractive:
		ic, ok := evt.Data.(slack.InteractionCallback)
		if !ok || evt.Request == nil {
			return
		}
		rep := b.HandleAction(ctx, ic)
		b.ack(client, evt.Request, rep)
	default:
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			b.ack(client, evt.Request, Reply{}) // events we do not use are still acknowledged
		}
	}
}

func (b *Bot) ack(client *socketmode.Client, req *socketmode.Request, rep Reply) {
	var err error
	if body := rep.Body(); body != nil {
		err = client.Ack(*req, body)
	} else {
		err = client.Ack(*req)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		b.log.Warn("could not acknowledge a socket mode envelope", "envelope", req.EnvelopeID, "err", err)
	}
}

// Compile-time check that a plain *slack.Client is a SlackAPI.
var _ SlackAPI = (*slack.Client)(nil)
