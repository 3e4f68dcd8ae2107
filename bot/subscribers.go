package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// A run can have several threads: an identical request (same scene and
// settings, any channel) joins the run already rendering or reuses the
// finished one, and its requester is answered in their own thread just as
// the first one is. Each thread is a subscription, kept as a marker so a
// restarted bot resumes every thread, not only the one in the run's labels.

// subscription is one thread following a run.
type subscription struct {
	RunID   string `json:"run_id"`
	Channel string `json:"channel"`
	Thread  string `json:"thread"`
	User    string `json:"user"`
	Source  string `json:"source"`
	// Scene is the scene shown in the title, "" when the file has one.
	Scene string `json:"scene,omitempty"`
	// Root is the thread the status message is in when it does not start
	// one (the shortcut's file message).
	Root string `json:"root,omitempty"`
}

// threadName is a thread's part of a marker key.
func threadName(channel, ts string) string { return channel + "-" + ts }

func subscriptionPrefix() string { return "slack/threads/" }
func subscriptionKey(runID, channel, ts string) string {
	return subscriptionPrefix() + runID + "/" + threadName(channel, ts) + ".json"
}

func pendingKey(channel, ts string) string {
	return "slack/pending/" + threadName(channel, ts) + ".json"
}

// finalKey records how far one thread's final report got.
func finalKey(runID, channel, ts string) string {
	return "slack/final/" + runID + "/" + threadName(channel, ts) + ".json"
}

// postedKey exists once a thread's final report is complete, so a starting
// bot lists the finished reports in one request instead of reading each
// marker. An earlier bot wrote slack/posted/<run> for the run's labelled
// thread; that still counts.
func postedKey(runID, channel, ts string) string {
	return "slack/posted/" + runID + "/" + threadName(channel, ts)
}

// videoKey records, per run and channel, the thread the video was uploaded
// to: later threads in that channel link to it instead of uploading it again.
func videoKey(runID, channel string) string { return "slack/video/" + runID + "/" + channel + ".json" }

// videoMarker is the channel's upload of a run's video.
type videoMarker struct {
	Thread    string `json:"thread"`
	Root      string `json:"root,omitempty"`
	FileID    string `json:"file_id,omitempty"`
	Permalink string `json:"permalink,omitempty"`
}

func (vm videoMarker) root() string {
	if vm.Root != "" {
		return vm.Root
	}
	return vm.Thread
}

// subscribe records that thread p follows run (create-if-absent: a request
// resubmitted after a restart subscribes once).
func (b *Bot) subscribe(ctx context.Context, runID string, p pendingRequest, source, scene string) error {
	data, err := json.Marshal(subscription{RunID: runID, Channel: p.Channel, Thread: p.Thread, User: p.User, Source: source, Scene: scene, Root: p.Root})
	if err != nil {
		return err
	}
	_, err = b.markers.PutMarker(ctx, subscriptionKey(runID, p.Channel, p.Thread), data, "")
	if err != nil && !errors.Is(err, ErrMarkerConflict) {
		return fmt.Errorf("record the thread of run %s: %w", runID, err)
	}
	return nil
}

// subscriptions lists every recorded thread, by run.
func (b *Bot) subscriptions(ctx context.Context) ([]subscription, error) {
	keys, err := b.markers.ListMarkers(ctx, subscriptionPrefix())
	if err != nil {
		return nil, err
	}
	var out []subscription
	for _, key := range keys {
		data, _, err := b.markers.GetMarker(ctx, key)
		if err != nil {
			b.log.Warn("could not read a thread's record", "key", key, "err", err)
			continue
		}
		var s subscription
		if json.Unmarshal(data, &s) != nil || s.RunID == "" || s.Channel == "" || s.Thread == "" {
			b.log.Warn("a thread's record is corrupt; skipping it", "key", key)
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// finishedReports returns the set of "run/channel-ts" whose final report is
// complete, and the runs an earlier bot marked complete as a whole.
func (b *Bot) finishedReports(ctx context.Context) (threads, legacy map[string]bool, err error) {
	keys, err := b.markers.ListMarkers(ctx, "slack/posted/")
	if err != nil {
		return nil, nil, err
	}
	threads, legacy = map[string]bool{}, map[string]bool{}
	for _, key := range keys {
		rest := strings.TrimPrefix(key, "slack/posted/")
		if strings.Contains(rest, "/") {
			threads[rest] = true
		} else {
			legacy[rest] = true
		}
	}
	return threads, legacy, nil
}

// runLocks serialise the final reports of one run's threads in this
// process, so the second thread in a channel sees the first one's upload.
type runLocks struct {
	mu    sync.Mutex
	locks map[string]*runLock
}

type runLock struct {
	sync.Mutex
	users int
}

func (l *runLocks) lock(runID string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*runLock{}
	}
	k := l.locks[runID]
	if k == nil {
		k = &runLock{}
		l.locks[runID] = k
	}
	k.users++
	l.mu.Unlock()
	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.users--; k.users == 0 {
			delete(l.locks, runID)
		}
		l.mu.Unlock()
	}
}
