package deploy

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

// lifecycleRule is one bucket lifecycle rule as the stack creates it for
// given parameter values.
type lifecycleRule struct {
	ID         string
	Prefix     string
	Tags       map[string]string
	Expiration any // days, or a {"Ref": parameter}
}

func (r lifecycleRule) matches(key string, tags map[string]string) bool {
	if !strings.HasPrefix(key, r.Prefix) {
		return false
	}
	for k, v := range r.Tags {
		if tags[k] != v {
			return false
		}
	}
	return true
}

// evalTemplate resolves the intrinsics the lifecycle rules use (Ref to a
// parameter, Fn::Sub of parameters, Fn::If on a condition) for params.
type evalTemplate struct {
	t          *testing.T
	params     map[string]string
	conditions map[string]any
}

func (e evalTemplate) value(v any) any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return v
	}
	switch {
	case m["Ref"] != nil:
		name := m["Ref"].(string)
		if p, ok := e.params[name]; ok {
			return p
		}
		return v // a resource or pseudo parameter: left as is
	case m["Fn::Sub"] != nil:
		s, ok := m["Fn::Sub"].(string)
		if !ok {
			e.t.Fatalf("Fn::Sub with variables is not evaluated here: %v", m)
		}
		for k, p := range e.params {
			s = strings.ReplaceAll(s, "${"+k+"}", p)
		}
		if strings.Contains(s, "${") {
			e.t.Fatalf("unresolved variable in %q", s)
		}
		return s
	case m["Fn::If"] != nil:
		args := m["Fn::If"].([]any)
		if e.condition(map[string]any{"Condition": args[0]}) {
			return e.value(args[1])
		}
		return e.value(args[2])
	}
	return v
}

func (e evalTemplate) condition(v any) bool {
	m := v.(map[string]any)
	switch {
	case m["Condition"] != nil:
		return e.condition(e.conditions[m["Condition"].(string)])
	case m["Fn::Not"] != nil:
		return !e.condition(m["Fn::Not"].([]any)[0])
	case m["Fn::And"] != nil:
		for _, c := range m["Fn::And"].([]any) {
			if !e.condition(c) {
				return false
			}
		}
		return true
	case m["Fn::Equals"] != nil:
		args := m["Fn::Equals"].([]any)
		return equal(e.value(args[0]), e.value(args[1]))
	}
	e.t.Fatalf("condition %v is not evaluated here", v)
	return false
}

// lifecycleRules reads the bucket's lifecycle rules from the template, as
// the stack would create them with params.
func lifecycleRules(t *testing.T, params map[string]string) []lifecycleRule {
	tmpl := decodeTemplate(t)
	e := evalTemplate{t: t, params: params, conditions: tmpl["Conditions"].(map[string]any)}
	var out []lifecycleRule
	for _, r := range props(t, tmpl, "Bucket")["LifecycleConfiguration"].(map[string]any)["Rules"].([]any) {
		rv := e.value(r)
		raw, _ := rv.(map[string]any)
		if raw["Ref"] == "AWS::NoValue" {
			continue
		}
		rule := lifecycleRule{ID: raw["Id"].(string), Tags: map[string]string{}, Expiration: raw["ExpirationInDays"]}
		if p, ok := e.value(raw["Prefix"]).(string); ok {
			rule.Prefix = p
		}
		if f, ok := raw["Filter"]; ok {
			t.Fatalf("rule %s uses Filter %v, which this test does not read", rule.ID, f)
		}
		for _, tf := range asList(raw["TagFilters"]) {
			m := tf.(map[string]any)
			rule.Tags[m["Key"].(string)] = m["Value"].(string)
		}
		out = append(out, rule)
	}
	return out
}

// taggingRecorder records the object keys written and the tags they were
// written with, as the store sends them to S3.
type taggingRecorder struct {
	next   http.RoundTripper
	bucket string
	mu     sync.Mutex
	tags   map[string]map[string]string // object key -> tags
}

func (r *taggingRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	isPut := req.Method == http.MethodPut && !req.URL.Query().Has("partNumber")
	isCreateMultipart := req.Method == http.MethodPost && req.URL.Query().Has("uploads")
	if isPut || isCreateMultipart {
		key := strings.TrimPrefix(req.URL.Path, "/"+r.bucket+"/") // path-style addressing
		tags := map[string]string{}
		if q, err := url.ParseQuery(req.Header.Get("X-Amz-Tagging")); err == nil {
			for k, v := range q {
				tags[k] = v[0]
			}
		}
		r.mu.Lock()
		r.tags[key] = tags
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// TestLifecycleRulesCoverWhatTheStoreWrites writes a run's objects with the
// real S3 store (under a prefix, as framefleet.example.yaml's `prefix:
// framefleet`, and at the bucket root) and checks them against the
// template's lifecycle rules: frames and segments expire after
// IntermediateRetentionDays, the finished results only with the runs, and
// everything of a run, the cache and the scenes after RunRetentionDays.
func TestLifecycleRulesCoverWhatTheStoreWrites(t *testing.T) {
	// The SDK cannot add a CA bundle to a custom HTTP client; the server is plain HTTP on loopback.
	t.Setenv("AWS_CA_BUNDLE", "")
	for _, tc := range []struct{ prefix, scope string }{{"framefleet", "trusted"}, {"team/renders", "trusted"}, {"", "trusted"}, {"framefleet", "preview"}, {"", "bot-studio"}} {
		prefix := tc.prefix
		t.Run("prefix="+prefix+",scope="+tc.scope, func(t *testing.T) {
			srv := s3test.Start(t)
			rec := &taggingRecorder{next: http.DefaultTransport, bucket: srv.Bucket, tags: map[string]map[string]string{}}
			ctx := context.Background()
			root, err := store.NewS3(ctx, srv.Bucket, prefix, store.Options{
				Region: srv.Region, Endpoint: srv.Endpoint, UsePathStyle: true, Credentials: srv.Credentials(),
				HTTPClient: &http.Client{Transport: rec},
			})
			if err != nil {
				t.Fatal(err)
			}
			st, err := store.NewScoped(root, tc.scope)
			if err != nil {
				t.Fatal(err)
			}
			const run = "20261130-abcdef"
			intermediate := []string{store.FrameKey(run, 1, "png"), store.SegmentKey(run, 0)}
			kept := []string{store.PlanKey(run), store.ChunkReportKey(run, 0), store.VideoKey(run, "Scene"),
				store.ManifestKey(run), store.PreviewKey(run), store.ThumbnailKey(run)}
			other := []string{store.BlendKey(strings.Repeat("ab", 32)), store.CacheKey("k1")}
			for _, key := range slices.Concat(intermediate, kept, other) {
				if err := st.Put(ctx, key, strings.NewReader("x")); err != nil {
					t.Fatal(err)
				}
			}
			written := func(key string) (string, map[string]string) {
				t.Helper()
				full := store.ScopePrefix(tc.scope) + key
				if prefix != "" {
					full = prefix + "/" + full
				}
				tags, ok := rec.tags[full]
				if !ok {
					t.Fatalf("the store did not write %s (wrote %v)", full, rec.tags)
				}
				return full, tags
			}

			rules := lifecycleRules(t, map[string]string{
				"StorePrefix": prefix, "RunRetentionDays": "90", "IntermediateRetentionDays": "7",
			})
			byExpiry := func(key string, param string) bool {
				full, tags := written(key)
				for _, r := range rules {
					if equal(r.Expiration, ref(param)) && r.matches(full, tags) {
						return true
					}
				}
				return false
			}
			for _, key := range intermediate {
				if !byExpiry(key, "IntermediateRetentionDays") {
					t.Errorf("%s (intermediate) matches no rule expiring it after IntermediateRetentionDays", key)
				}
			}
			for _, key := range kept {
				if byExpiry(key, "IntermediateRetentionDays") {
					t.Errorf("%s (a result) would expire with the intermediate files", key)
				}
			}
			for _, key := range slices.Concat(intermediate, kept, other) {
				if !byExpiry(key, "RunRetentionDays") {
					t.Errorf("%s matches no rule expiring it after RunRetentionDays", key)
				}
			}

			// With RunRetentionDays 0, results are kept forever; intermediates still go.
			forever := lifecycleRules(t, map[string]string{"StorePrefix": prefix, "RunRetentionDays": "0"})
			for _, r := range forever {
				if equal(r.Expiration, ref("RunRetentionDays")) {
					t.Errorf("rule %s expires objects although RunRetentionDays is 0", r.ID)
				}
			}
		})
	}
}
