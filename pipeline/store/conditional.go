package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ConditionalCheckKey holds the result of the store's conditional-write
// probe, so it runs once per store, not once per process.
const ConditionalCheckKey = "framefleet/conditional-writes.json"

// conditionalProbePrefix holds the probe's scratch object while it runs.
const conditionalProbePrefix = "framefleet/probe-"

// ConditionalCheck is what the probe found.
type ConditionalCheck struct {
	// Supported: the store refused a second create and a replace of a
	// version that is not the current one, as S3 does.
	Supported bool `json:"supported"`
	// Reason says what the store did wrong when it is not Supported.
	Reason    string    `json:"reason,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
	// Recorded: read from ConditionalCheckKey rather than probed now.
	Recorded bool `json:"-"`
}

// NoConditionalWritesError: the store ignores If-None-Match / If-Match, so
// two identical renders started together could both run and records could
// lose updates.
type NoConditionalWritesError struct {
	Store  string
	Reason string
	// Setting is the configuration key that accepts such a store anyway.
	Setting string
}

func (e *NoConditionalWritesError) Error() string {
	return fmt.Sprintf("store %s ignores conditional writes (%s): identical renders started together would both run, and "+
		"concurrent updates of a run's record could be lost; use an S3 server that honours If-None-Match and If-Match, "+
		"or accept this with %s: true (runs are then not deduplicated)", e.Store, e.Reason, e.Setting)
}

// UnsafeSetting is the configuration key that accepts a store without
// conditional writes.
const UnsafeSetting = "s3.unsafe_no_conditional_writes"

// CheckConditionalWrites returns the store's recorded probe result, or
// probes it (ProbeConditionalWrites) and records the result when it was
// never checked. A file store implements conditional writes itself and is
// never probed.
func CheckConditionalWrites(ctx context.Context, st Store, now time.Time) (ConditionalCheck, error) {
	if _, ok := st.(*File); ok {
		return ConditionalCheck{Supported: true, CheckedAt: now.UTC()}, nil
	}
	data, _, err := st.GetVersioned(ctx, ConditionalCheckKey)
	if err == nil {
		var c ConditionalCheck
		if json.Unmarshal(data, &c) == nil && !c.CheckedAt.IsZero() {
			c.Recorded = true
			return c, nil
		}
		// A damaged record: probe again and replace it.
	} else if !errors.Is(err, ErrNotFound) {
		return ConditionalCheck{}, fmt.Errorf("read the store's conditional-write check: %w", err)
	}
	return RecheckConditionalWrites(ctx, st, now)
}

// RecheckConditionalWrites probes the store (ProbeConditionalWrites) even
// when it was checked before, and records the result: `framefleet setup`
// does, since a server's behaviour can change with its version.
func RecheckConditionalWrites(ctx context.Context, st Store, now time.Time) (ConditionalCheck, error) {
	if _, ok := st.(*File); ok {
		return ConditionalCheck{Supported: true, CheckedAt: now.UTC()}, nil
	}
	c, err := ProbeConditionalWrites(ctx, st, now)
	if err != nil {
		return ConditionalCheck{}, err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return ConditionalCheck{}, err
	}
	if err := st.Put(ctx, ConditionalCheckKey, bytes.NewReader(data)); err != nil {
		return ConditionalCheck{}, fmt.Errorf("record the store's conditional-write check: %w", err)
	}
	return c, nil
}

// ProbeConditionalWrites writes a scratch key three times: create-if-absent
// (must succeed), create-if-absent again (must be refused), and
// replace-if-version with a version that is not the key's (must be
// refused). The scratch key is removed afterwards.
func ProbeConditionalWrites(ctx context.Context, st Store, now time.Time) (ConditionalCheck, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := conditionalProbePrefix + hex.EncodeToString(b)
	defer func() { _ = st.Delete(context.WithoutCancel(ctx), key) }()
	c := ConditionalCheck{Supported: true, CheckedAt: now.UTC()}
	ver, err := st.PutIfVersion(ctx, key, []byte("first"), "")
	if err != nil {
		return ConditionalCheck{}, fmt.Errorf("probe conditional writes: create %s: %w", key, err)
	}
	var reasons []string
	switch _, err := st.PutIfVersion(ctx, key, []byte("second"), ""); {
	case err == nil:
		reasons = append(reasons, "a create with If-None-Match: * replaced an existing object")
	case !errors.Is(err, ErrConflict):
		return ConditionalCheck{}, fmt.Errorf("probe conditional writes: create %s again: %w", key, err)
	}
	wrong := Version(`"00000000000000000000000000000000"`)
	if wrong == ver {
		wrong = `"11111111111111111111111111111111"`
	}
	switch _, err := st.PutIfVersion(ctx, key, []byte("third"), wrong); {
	case err == nil:
		reasons = append(reasons, "a replace with If-Match and a wrong ETag succeeded")
	case !errors.Is(err, ErrConflict):
		return ConditionalCheck{}, fmt.Errorf("probe conditional writes: replace %s: %w", key, err)
	}
	if len(reasons) > 0 {
		c.Supported = false
		c.Reason = strings.Join(reasons, "; ")
	}
	return c, nil
}
