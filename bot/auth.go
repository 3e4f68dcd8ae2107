package bot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/framefleet/framefleet/pipeline/config"
)

// groupTTL is how long user group memberships are trusted before they are
// asked for again.
const groupTTL = 5 * time.Minute

// authorizer decides who may do what, from the slack section of the
// configuration. Nothing is fetched or submitted before it says yes.
type authorizer struct {
	cfg config.Slack
	api SlackAPI
	now func() time.Time

	mu      sync.Mutex
	members map[string]bool // union of the allowed user groups' members
	fetched time.Time
}

// Refusal is a clear "no", shown to the user ephemerally.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return r.Reason }

// check refuses a command from user in channel unless both are allowed.
func (a *authorizer) check(ctx context.Context, channel, user string) error {
	if len(a.cfg.AllowedChannels) > 0 && !slices.Contains(a.cfg.AllowedChannels, channel) {
		return &Refusal{"Rendering is not enabled in this channel. Ask an admin to add it to `slack.allowed_channels`, or use a channel where it is."}
	}
	if len(a.cfg.AllowedUsers) == 0 && len(a.cfg.AllowedUsergroups) == 0 {
		return nil
	}
	if slices.Contains(a.cfg.AllowedUsers, user) || slices.Contains(a.cfg.Admins, user) {
		return nil
	}
	if len(a.cfg.AllowedUsergroups) > 0 {
		in, err := a.inGroups(ctx, user)
		if err != nil {
			return &Refusal{"I could not check your user group membership just now (" + err.Error() + "): try again in a minute."}
		}
		if in {
			return nil
		}
	}
	return &Refusal{"You are not on the list of people who may render here. Ask an admin to add you (or a user group you are in) to `slack.allowed_users` / `slack.allowed_usergroups`."}
}

// decidesAtOnce reports whether check can answer for user in channel
// without asking Slack (no user group lookup, or a fresh cached one), so a
// Socket Mode envelope can be acknowledged with the answer itself.
func (a *authorizer) decidesAtOnce(channel, user string) bool {
	if len(a.cfg.AllowedChannels) > 0 && !slices.Contains(a.cfg.AllowedChannels, channel) ||
		len(a.cfg.AllowedUsergroups) == 0 ||
		slices.Contains(a.cfg.AllowedUsers, user) || slices.Contains(a.cfg.Admins, user) {
		return true
	}
	if !a.mu.TryLock() {
		return false // a lookup is under way
	}
	defer a.mu.Unlock()
	return a.members != nil && a.now().Sub(a.fetched) <= groupTTL
}

// mayCancel: the requester and admins.
func (a *authorizer) mayCancel(user, requester string) bool {
	return user == requester || slices.Contains(a.cfg.Admins, user)
}

func (a *authorizer) inGroups(ctx context.Context, user string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.members == nil || a.now().Sub(a.fetched) > groupTTL {
		members := map[string]bool{}
		for _, g := range a.cfg.AllowedUsergroups {
			var ids []string
			err := withRetryAfter(ctx, sleepCtx, func() error {
				var err error
				ids, err = a.api.GetUserGroupMembersContext(ctx, g)
				return err
			})
			if err != nil {
				return false, fmt.Errorf("usergroups.users.list %s: %w", g, err)
			}
			for _, id := range ids {
				members[id] = true
			}
		}
		a.members, a.fetched = members, a.now()
	}
	return a.members[user], nil
}
