package bot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
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
