package bot

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRequestAge is how far a signed request's timestamp may be from now
// (Slack's replay window).
const MaxRequestAge = 5 * time.Minute

// Signature errors; every one is answered with 401 and nothing else happens.
var (
	ErrNoSignature    = errors.New("request is not signed: X-Slack-Signature or X-Slack-Request-Timestamp missing")
	ErrStaleTimestamp = errors.New("request timestamp is more than 5 minutes from now (a replay, or this host's clock is wrong)")
	ErrBadSignature   = errors.New("request signature does not match the signing secret")
	ErrReplayed       = errors.New("request was already received (a replay)")
)

// Sign returns the X-Slack-Signature for a body sent at ts (Unix seconds).
func Sign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:", ts)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyRequest checks a request's Slack signature over its raw body, and
// that its timestamp is within MaxRequestAge of now.
func VerifyRequest(h http.Header, body []byte, secret string, now time.Time) error {
	sig, tsText := h.Get("X-Slack-Signature"), h.Get("X-Slack-Request-Timestamp")
	if sig == "" || tsText == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrStaleTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > MaxRequestAge || d < -MaxRequestAge {
		return ErrStaleTimestamp
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, tsText, body))) {
		return ErrBadSignature
	}
	return nil
}

// seenPrefix holds one marker per signed request within the replay window,
// named <timestamp>-<signature>, so a replay is refused also after a restart.
const seenPrefix = "slack/seen/"

// firstSeen records a verified request's signature, or returns ErrReplayed
// when it was recorded before. When the store cannot be reached it falls
// back to this process's memory rather than refuse every request.
func (b *Bot) firstSeen(ctx context.Context, h http.Header) error {
	ts, sig := h.Get("X-Slack-Request-Timestamp"), strings.TrimPrefix(h.Get("X-Slack-Signature"), "v0=")
	key := seenPrefix + ts + "-" + sig
	b.mu.Lock()
	_, dup := b.seen[key]
	if !dup {
		b.seen[key] = b.now()
	}
	b.mu.Unlock()
	if dup {
		return ErrReplayed
	}
	_, err := b.markers.PutMarker(ctx, key, []byte("{}"), "")
	switch {
	case errors.Is(err, ErrMarkerConflict):
		return ErrReplayed
	case err != nil:
		b.log.Warn("could not record a request's signature; replays are caught by this process only", "err", err)
	}
	return nil
}

// forgetSeen removes the signatures older than the replay window (a
// replay of those is refused as stale anyway).
func (b *Bot) forgetSeen(ctx context.Context) {
	keys, err := b.markers.ListMarkers(ctx, seenPrefix)
	if err != nil {
		b.log.Warn("could not list the recorded request signatures", "err", err)
		return
	}
	cutoff := b.now().Add(-MaxRequestAge - time.Minute).Unix()
	for _, key := range keys {
		tsText, _, _ := strings.Cut(strings.TrimPrefix(key, seenPrefix), "-")
		if ts, err := strconv.ParseInt(tsText, 10, 64); err == nil && ts < cutoff {
			_ = b.markers.DeleteMarker(ctx, key)
		}
	}
}
