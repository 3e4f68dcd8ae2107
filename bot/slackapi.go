package bot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/slack-go/slack"
)

// SlackAPI is the part of Slack's Web API the bot calls; *slack.Client
// implements it.
type SlackAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	UploadFileContext(ctx context.Context, params slack.UploadFileParameters) (*slack.FileSummary, error)
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slack.GetUserGroupMembersOption) ([]string, error)
	GetFilesContext(ctx context.Context, params slack.GetFilesParameters) ([]slack.File, *slack.Paging, error)
	GetFileContext(ctx context.Context, downloadURL string, writer io.Writer) error
	GetConversationRepliesContext(ctx context.Context, params *slack.GetConversationRepliesParameters) ([]slack.Message, bool, string, error)
	GetFileInfoContext(ctx context.Context, fileID string, count, page int) (*slack.File, []slack.Comment, *slack.Paging, error)
	OpenViewContext(ctx context.Context, triggerID string, view slack.ModalViewRequest) (*slack.ViewResponse, error)
}

// maxRateLimitWaits bounds how often one call waits out a 429.
const maxRateLimitWaits = 5

// withRetryAfter runs call, and when Slack answers 429 waits the
// Retry-After it gave (at least a second) and tries again.
func withRetryAfter(ctx context.Context, sleep func(context.Context, time.Duration) error, call func() error) error {
	return withRetryAfterN(ctx, sleep, maxRateLimitWaits, call)
}

// withRetryAfterN is withRetryAfter waiting at most waits times.
func withRetryAfterN(ctx context.Context, sleep func(context.Context, time.Duration) error, waits int, call func() error) error {
	for i := 0; ; i++ {
		err := call()
		var rl *slack.RateLimitedError
		if err == nil || !errors.As(err, &rl) || i == waits {
			return err
		}
		wait := max(rl.RetryAfter, time.Second)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("waiting %s for Slack's rate limit: %w", wait, err)
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slackErrorCode returns Slack's error code ("not_in_channel") or "".
func slackErrorCode(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	if err != nil {
		return err.Error()
	}
	return ""
}
