package deploy

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline/batch"
)

// oidcToken is a GitHub Actions token's claims that trust policies read.
type oidcToken struct {
	name, aud, sub string
}

func oidcTokens() []oidcToken {
	const aud = "sts.amazonaws.com"
	return []oidcToken{
		{"pull request", aud, "repo:" + sampleRepo + ":pull_request"},
		{"feature branch", aud, "repo:" + sampleRepo + ":ref:refs/heads/feature/water"},
		{"default branch", aud, "repo:" + sampleRepo + ":ref:refs/heads/main"},
		{"tag", aud, "repo:" + sampleRepo + ":ref:refs/tags/v1.2.0"},
		{"trusted environment", aud, "repo:" + sampleRepo + ":environment:framefleet-trusted"},
		{"release environment", aud, "repo:" + sampleRepo + ":environment:release"},
		{"other environment", aud, "repo:" + sampleRepo + ":environment:staging"},
		{"other repository", aud, "repo:mallory/films:ref:refs/heads/main"},
		{"repository with a longer name", aud, "repo:" + sampleRepo + "-fork:pull_request"},
		{"other audience", "sigstore", "repo:" + sampleRepo + ":ref:refs/heads/main"},
	}
}

// TestTrustPoliciesAdmitOnlyTheirScope evaluates every GitHub role's trust
// policy against sample tokens: the trusted role only for the default
// branch and the trusted environment, the preview role for pull requests and
// branches, the image role only for the release environment; nothing for
// tags, other environments, other repositories or audiences.
func TestTrustPoliciesAdmitOnlyTheirScope(t *testing.T) {
	s := newStack(t, decodeTemplate(t), map[string]string{"GitHubRepo": sampleRepo, "GitHubOIDCProviderArn": ""})
	provider := s.ref("GitHubOIDCProvider").(string)
	admits := map[string][]string{
		"GitHubRenderRole":  {"default branch", "trusted environment"},
		"GitHubPreviewRole": {"pull request", "feature branch", "default branch"}, // a branch may ask for less
		"GitHubImageRole":   {"release environment"},
	}
	for name, want := range admits {
		t.Run(name, func(t *testing.T) {
			r, ok := s.role(name)
			if !ok {
				t.Fatalf("the stack creates no %s", name)
			}
			for _, tok := range oidcTokens() {
				req := request{
					principal: map[string]string{"Federated": provider},
					action:    "sts:AssumeRoleWithWebIdentity",
					context: map[string][]string{
						"token.actions.githubusercontent.com:aud": {tok.aud},
						"token.actions.githubusercontent.com:sub": {tok.sub},
					},
				}
				got := allowed(t, r.trust, req)
				if w := contains(want, tok.name); got != w {
					t.Errorf("%s (sub %s, aud %s): may assume = %v, want %v", tok.name, tok.sub, tok.aud, got, w)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// scopeKeys are store keys of one scope, relative to the store.
type scopeKeys struct{ root string }

func (k scopeKeys) key(rel string) string { return k.root + rel }

var (
	trustedKeys = scopeKeys{""}
	previewKeys = scopeKeys{"scopes/preview/"}
	botKeys     = scopeKeys{"scopes/bot/"}
)

// s3Check is one S3 request and the roles that may make it.
type s3Check struct {
	what, action string
	key          string // relative to the store
	roles        []string
}

// TestRolesWriteOnlyTheirScope evaluates each role's S3 statements against
// requests on every scope's keys, with and without a store prefix: a scope
// writes only its own keys, preview and bot read the trusted scope, and the
// trusted scope reads no other.
func TestRolesWriteOnlyTheirScope(t *testing.T) {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	trusted := []string{"JobRole", "GitHubRenderRole"}
	preview := []string{"PreviewJobRole", "GitHubPreviewRole"}
	bot := []string{"BotJobRole", "BotRole"}
	all := append(append(append([]string{}, trusted...), preview...), bot...)
	var checks []s3Check
	for _, rel := range []string{"runs/r1/plan.json", "runs/r1/manifest.json", "runs/r1/Scene.mp4", "cache/k1.json",
		"blends/" + sha + ".blend", "inputs/" + sha, "runs/r1/frames/frame_000001.png"} {
		checks = append(checks,
			s3Check{"trusted writes " + rel, "s3:PutObject", trustedKeys.key(rel), trusted},
			s3Check{"trusted reads " + rel, "s3:GetObject", trustedKeys.key(rel), all},
			s3Check{"preview writes " + rel, "s3:PutObject", previewKeys.key(rel), preview},
			s3Check{"preview reads " + rel, "s3:GetObject", previewKeys.key(rel), preview},
			s3Check{"bot writes " + rel, "s3:PutObject", botKeys.key(rel), bot},
			s3Check{"bot reads " + rel, "s3:GetObject", botKeys.key(rel), bot},
		)
	}
	checks = append(checks,
		s3Check{"delete a trusted result", "s3:DeleteObject", trustedKeys.key("runs/r1/Scene.mp4"), nil},
		s3Check{"delete a preview result", "s3:DeleteObject", previewKeys.key("runs/r1/Scene.mp4"), nil},
		s3Check{"delete a bot marker", "s3:DeleteObject", botKeys.key("slack/pending/C1-1.json"), []string{"BotRole"}},
		s3Check{"delete a bot result", "s3:DeleteObject", botKeys.key("runs/r1/Scene.mp4"), nil},
		s3Check{"release a trusted run id", "s3:DeleteObject", trustedKeys.key("runindex/id/abc"), []string{"GitHubRenderRole"}},
		s3Check{"release a preview run id", "s3:DeleteObject", previewKeys.key("runindex/id/abc"), []string{"GitHubPreviewRole"}},
		s3Check{"release a bot run id", "s3:DeleteObject", botKeys.key("runindex/id/abc"), []string{"BotRole"}},
		s3Check{"delete the trusted run listing", "s3:DeleteObject", trustedKeys.key("runindex/time/123-abc"), nil},
		s3Check{"index a trusted run", "s3:PutObject", trustedKeys.key("runindex/time/123-abc"), []string{"GitHubRenderRole"}},
		s3Check{"index a preview run", "s3:PutObject", previewKeys.key("runindex/time/123-abc"), []string{"GitHubPreviewRole", "PreviewJobRole"}},
		s3Check{"write at the store root", "s3:PutObject", "scopes/x", nil},
		s3Check{"write another bot's scope", "s3:PutObject", "scopes/bot-other/runs/r1/plan.json", nil},
	)
	for _, prefix := range []string{"framefleet", ""} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			s := scopeStack(t, prefix)
			roles := scopeRoles(t, s, all)
			for _, c := range checks {
				for _, name := range all {
					got := allowed(t, roles[name].policies, request{action: c.action, resource: objectARN(prefix, c.key)})
					if want := contains(c.roles, name); got != want {
						t.Errorf("%s: %s %s on %s = %v, want %v", c.what, name, c.action, c.key, got, want)
					}
				}
			}
			// Every role lists the bucket's key names (not contents): S3 answers a
			// missing key with 404 only to callers that may list, and the store's
			// existence checks need the 404.
			for _, name := range all {
				req := request{action: "s3:ListBucket", resource: "arn:aws:s3:::" + sampleBucket,
					context: map[string][]string{"s3:prefix": {join(prefix, "runs/")}}}
				if !allowed(t, roles[name].policies, req) {
					t.Errorf("%s may not list the bucket: a missing key would read as AccessDenied, not NotFound", name)
				}
				if allowed(t, roles[name].policies, request{action: "s3:ListBucket", resource: "arn:aws:s3:::another-bucket"}) {
					t.Errorf("%s may list another bucket", name)
				}
			}
		})
	}
}

// TestTaggingOnlyOnIntermediates: the retention tag makes the lifecycle rule
// delete an object, so only frames and segments of the role's own scope may
// be tagged, never a finished video, manifest or cache entry.
func TestTaggingOnlyOnIntermediates(t *testing.T) {
	s := scopeStack(t, "framefleet")
	names := []string{"JobRole", "GitHubRenderRole", "PreviewJobRole", "GitHubPreviewRole", "BotJobRole", "BotRole"}
	roles := scopeRoles(t, s, names)
	own := map[string]scopeKeys{"JobRole": trustedKeys, "GitHubRenderRole": trustedKeys, "PreviewJobRole": previewKeys,
		"GitHubPreviewRole": previewKeys, "BotJobRole": botKeys, "BotRole": botKeys}
	for _, name := range names {
		for _, scope := range []scopeKeys{trustedKeys, previewKeys, botKeys} {
			for _, c := range []struct {
				rel  string
				tags bool
			}{
				{"runs/r1/frames/frame_000001.png", true},
				{"runs/r1/segments/chunk_00000.mp4", true},
				{"runs/r1/Scene.mp4", false},
				{"runs/r1/manifest.json", false},
				{"cache/k1.json", false},
				{"blends/ab.blend", false},
			} {
				want := c.tags && scope == own[name]
				got := allowed(t, roles[name].policies, request{action: "s3:PutObjectTagging", resource: objectARN("framefleet", scope.key(c.rel))})
				if got != want {
					t.Errorf("%s tags %s = %v, want %v", name, scope.key(c.rel), got, want)
				}
			}
		}
	}
}

// TestRequestersSubmitOnlyTheirScopesDefinition evaluates the Batch
// statements: each requester submits only its scope's definition to its
// scope's queue, tags only jobs being created with its own scope, stops
// only its scope's jobs, registers no definition and passes no role.
func TestRequestersSubmitOnlyTheirScopesDefinition(t *testing.T) {
	s := scopeStack(t, "")
	requesters := map[string]struct{ scope, queue string }{
		"GitHubRenderRole":  {"trusted", "JobQueue"},
		"GitHubPreviewRole": {"preview", "PreviewJobQueue"},
		"BotRole":           {"bot", "JobQueue"},
	}
	var names []string
	for n := range requesters {
		names = append(names, n)
	}
	roles := scopeRoles(t, s, append(names, "JobRole", "PreviewJobRole", "BotJobRole"))
	defARN := func(name string) string {
		return fmt.Sprintf("arn:aws:batch:%s:%s:job-definition/%s", sampleRegion, sampleAccount, name)
	}
	jobARN := fmt.Sprintf("arn:aws:batch:%s:%s:job/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab", sampleRegion, sampleAccount)
	for name, me := range requesters {
		t.Run(name, func(t *testing.T) {
			pol := roles[name].policies
			may := func(req request) bool { return allowed(t, pol, req) }
			for _, scope := range []string{"trusted", "preview", "bot"} {
				def := defARN("framefleet-" + scope + ":7")
				if got, want := may(request{action: "batch:SubmitJob", resource: def}), scope == me.scope; got != want {
					t.Errorf("submit %s = %v, want %v", def, got, want)
				}
				tag := request{action: "batch:TagResource", resource: jobARN, context: map[string][]string{
					"aws:RequestTag/framefleet-scope": {scope}, "aws:TagKeys": {"framefleet", "framefleet-scope", "framefleet-run"}}}
				if got, want := may(tag), scope == me.scope; got != want {
					t.Errorf("tag a new job framefleet-scope=%s = %v, want %v", scope, got, want)
				}
				retag := tag
				retag.context = map[string][]string{"aws:RequestTag/framefleet-scope": {me.scope}, "aws:TagKeys": {"framefleet-scope"},
					"aws:ResourceTag/framefleet-scope": {scope}}
				if may(retag) {
					t.Errorf("may re-tag an existing %s job into its own scope (and then stop it)", scope)
				}
				for _, stop := range []string{"batch:CancelJob", "batch:TerminateJob"} {
					req := request{action: stop, resource: jobARN, context: map[string][]string{"aws:ResourceTag/framefleet-scope": {scope}}}
					if got, want := may(req), scope == me.scope; got != want {
						t.Errorf("%s a %s job = %v, want %v", stop, scope, got, want)
					}
				}
			}
			// By name (IAM sees no revision then) or name:revision, and nothing that merely starts alike.
			if !may(request{action: "batch:SubmitJob", resource: defARN("framefleet-" + me.scope)}) {
				t.Errorf("may not submit its definition by name")
			}
			for _, def := range []string{defARN("framefleet-" + me.scope + "x:1"), defARN("framefleet-" + me.scope + "x"), defARN("other:1")} {
				if may(request{action: "batch:SubmitJob", resource: def}) {
					t.Errorf("may submit %s", def)
				}
			}
			for q, want := range map[string]bool{"JobQueue": me.queue == "JobQueue", "PreviewJobQueue": me.queue == "PreviewJobQueue"} {
				if got := may(request{action: "batch:SubmitJob", resource: s.ref(q).(string)}); got != want {
					t.Errorf("submit to %s = %v, want %v", q, got, want)
				}
			}
			if may(request{action: "batch:TagResource", resource: jobARN, context: map[string][]string{
				"aws:RequestTag/framefleet-scope": {me.scope}, "aws:TagKeys": {"framefleet-scope", "owner"}}}) {
				t.Error("may put tags other than framefleet's")
			}
			for _, a := range []string{"batch:RegisterJobDefinition", "batch:DeregisterJobDefinition", "iam:PassRole", "batch:UpdateJobQueue"} {
				for _, res := range []string{"*", defARN("framefleet-" + me.scope), roleARN("JobRole"), roleARN("PreviewJobRole")} {
					if may(request{action: a, resource: res, context: map[string][]string{"iam:PassedToService": {"ecs-tasks.amazonaws.com"}}}) {
						t.Errorf("may %s on %s", a, res)
					}
				}
			}
		})
	}
	// Job roles touch no Batch API at all.
	for _, name := range []string{"JobRole", "PreviewJobRole", "BotJobRole"} {
		for _, a := range []string{"batch:SubmitJob", "batch:TagResource", "batch:CancelJob", "iam:PassRole"} {
			if allowed(t, roles[name].policies, request{action: a, resource: jobARN}) {
				t.Errorf("%s may %s", name, a)
			}
		}
	}
}

func scopeStack(t *testing.T, prefix string) *stack {
	t.Helper()
	return newStack(t, decodeTemplate(t), map[string]string{
		"GitHubRepo": sampleRepo, "StorePrefix": prefix, "BotPrincipalArn": "arn:aws:iam::" + sampleAccount + ":role/slack-bot",
		"BotScope": "bot", "WorkerImage": sampleAccount + ".dkr.ecr." + sampleRegion + ".amazonaws.com/framefleet:v1.0.0-blender3.4.1",
	})
}

// scopeRoles returns the named roles. A missing one fails the test, and is
// evaluated as a role that may do nothing, so the others are still checked
// (run over an older template, the tests then show what its roles allow).
func scopeRoles(t *testing.T, s *stack, names []string) map[string]role {
	t.Helper()
	out := map[string]role{}
	for _, n := range names {
		r, ok := s.role(n)
		if !ok {
			t.Errorf("the stack creates no role %s", n)
		}
		out[n] = r
	}
	return out
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

func objectARN(prefix, key string) string {
	return "arn:aws:s3:::" + sampleBucket + "/" + join(prefix, key)
}

func roleARN(name string) string {
	return "arn:aws:iam::" + sampleAccount + ":role/" + sampleStack + "-" + strings.TrimSpace(name)
}

// TestJobDefinitionsPerScope: each scope's definition names its own job
// role, runs as the image's unprivileged user, has a timeout and the
// engine's retry rules (the same ones `framefleet setup` registers).
func TestJobDefinitionsPerScope(t *testing.T) {
	s := scopeStack(t, "")
	for res, want := range map[string]struct{ name, role string }{
		"TrustedJobDefinition": {"framefleet-trusted", "JobRole"},
		"PreviewJobDefinition": {"framefleet-preview", "PreviewJobRole"},
		"BotJobDefinition":     {"framefleet-bot", "BotJobRole"},
	} {
		t.Run(res, func(t *testing.T) {
			if !s.exists(res) {
				t.Fatalf("the stack creates no %s with WorkerImage set", res)
			}
			p := s.resolve(s.resources()[res].(map[string]any)["Properties"]).(map[string]any)
			cp := p["ContainerProperties"].(map[string]any)
			if p["JobDefinitionName"] != want.name {
				t.Errorf("name %v, want %s (the requester roles may submit only that)", p["JobDefinitionName"], want.name)
			}
			if cp["JobRoleArn"] != s.getAtt(want.role, "Arn") {
				t.Errorf("job role %v, want %s", cp["JobRoleArn"], want.role)
			}
			if u := fmt.Sprint(cp["User"]); u == "" || u == "<nil>" || u == "0" || u == "root" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
				t.Errorf("user %q: the definition must run as the image's unprivileged user (the metadata block holds only for non-root)", u)
			} else if u != batch.DefaultUser {
				t.Errorf("user %q, want the image's %s (what framefleet setup registers)", u, batch.DefaultUser)
			}
			if cp["Privileged"] == true {
				t.Error("the definition runs privileged")
			}
			to, _ := p["Timeout"].(map[string]any)
			if fmt.Sprint(to["AttemptDurationSeconds"]) != s.params["JobTimeoutSeconds"] {
				t.Errorf("timeout %v, want JobTimeoutSeconds", p["Timeout"])
			}
			var got []string
			rs := p["RetryStrategy"].(map[string]any)
			for _, e := range asList(rs["EvaluateOnExit"]) {
				m := e.(map[string]any)
				got = append(got, fmt.Sprintf("%v|%v|%v|%v", m["Action"], str(m["OnStatusReason"]), str(m["OnReason"]), str(m["OnExitCode"])))
			}
			var wantRules []string
			for _, r := range batchRetryRules() {
				wantRules = append(wantRules, r)
			}
			if strings.Join(got, " ") != strings.Join(wantRules, " ") {
				t.Errorf("retry rules\n%v\nwant the engine's\n%v", got, wantRules)
			}
		})
	}
	// Without WorkerImage the stack registers none (setup does).
	none := newStack(t, decodeTemplate(t), map[string]string{"WorkerImage": ""})
	for _, res := range []string{"TrustedJobDefinition", "PreviewJobDefinition", "BotJobDefinition"} {
		if none.exists(res) {
			t.Errorf("%s is created without a WorkerImage", res)
		}
	}
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// batchRetryRules is the engine's evaluateOnExit policy as
// "Action|OnStatusReason|OnReason|OnExitCode".
func batchRetryRules() []string {
	var out []string
	for _, r := range batch.BatchRetryRules() {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s", r.Action, r.OnStatusReason, r.OnReason, r.OnExitCode))
	}
	return out
}

// ecrRule is one ECR lifecycle policy rule.
type ecrRule struct {
	RulePriority int `json:"rulePriority"`
	Selection    struct {
		TagStatus     string   `json:"tagStatus"`
		TagPrefixList []string `json:"tagPrefixList"`
		CountType     string   `json:"countType"`
		CountNumber   int      `json:"countNumber"`
	} `json:"selection"`
}

// TestImageExpiryKeepsReleases plays the repository's lifecycle policy over
// a history of pushes: release images (v* tags, what job definitions name)
// never expire however many images follow; development images beyond
// KeepImages and untagged ones do.
func TestImageExpiryKeepsReleases(t *testing.T) {
	s := newStack(t, decodeTemplate(t), map[string]string{"KeepImages": "3"})
	text := s.resolve(s.resources()["Repository"].(map[string]any)["Properties"]).(map[string]any)["LifecyclePolicy"].(map[string]any)["LifecyclePolicyText"].(string)
	var policy struct {
		Rules []ecrRule `json:"rules"`
	}
	if err := json.Unmarshal([]byte(text), &policy); err != nil {
		t.Fatalf("lifecycle policy: %v\n%s", err, text)
	}
	type image struct {
		tag     string // "" untagged
		daysOld int
	}
	var images []image // newest first
	for i := range 10 {
		images = append(images, image{fmt.Sprintf("dev-%012d-blender3.4.1", i), i})
	}
	images = append(images, image{"v1.0.0-blender3.4.1", 30}, image{"v0.9.0-blender3.4.1", 60}, image{"", 20})
	expired := map[string]bool{}
	slices.SortFunc(policy.Rules, func(a, b ecrRule) int {
		return a.RulePriority - b.RulePriority
	})
	for _, r := range policy.Rules {
		sel := r.Selection
		var matched []image
		for _, im := range images {
			ok := false
			switch sel.TagStatus {
			case "untagged":
				ok = im.tag == ""
			case "any":
				ok = true
			case "tagged":
				ok = im.tag != "" && slices.ContainsFunc(sel.TagPrefixList, func(p string) bool { return strings.HasPrefix(im.tag, p) })
			default:
				t.Fatalf("tagStatus %s is not evaluated here", sel.TagStatus)
			}
			if ok && !expired[im.tag+fmt.Sprint(im.daysOld)] {
				matched = append(matched, im)
			}
		}
		for i, im := range matched {
			var expire bool
			switch sel.CountType {
			case "imageCountMoreThan":
				expire = i >= sel.CountNumber
			case "sinceImagePushed":
				expire = im.daysOld > sel.CountNumber
			default:
				t.Fatalf("countType %s is not evaluated here", sel.CountType)
			}
			if expire {
				expired[im.tag+fmt.Sprint(im.daysOld)] = true
			}
		}
	}
	for _, im := range images {
		gone := expired[im.tag+fmt.Sprint(im.daysOld)]
		switch {
		case strings.HasPrefix(im.tag, "v") && gone:
			t.Errorf("release image %s expires: a job definition naming it would fail with CannotPullContainerError", im.tag)
		case im.tag == "" && !gone:
			t.Error("an untagged image 20 days old is kept")
		case strings.HasPrefix(im.tag, "dev-") && gone != (im.daysOld >= 3):
			t.Errorf("development image %s (age rank %d): expired = %v, want the newest 3 kept", im.tag, im.daysOld, gone)
		}
	}
}

// TestBudgetIsOptional: the budget exists only with an amount and an address,
// and then alarms by e-mail.
func TestBudgetIsOptional(t *testing.T) {
	tmpl := decodeTemplate(t)
	for _, p := range []map[string]string{{}, {"MonthlyBudgetUSD": "200"}, {"BudgetEmail": "ops@example.com"}} {
		if newStack(t, tmpl, p).exists("Budget") {
			t.Errorf("a budget is created with %v", p)
		}
	}
	s := newStack(t, tmpl, map[string]string{"MonthlyBudgetUSD": "200", "BudgetEmail": "ops@example.com"})
	if !s.exists("Budget") {
		t.Fatal("no budget with MonthlyBudgetUSD and BudgetEmail set")
	}
	p := s.resolve(s.resources()["Budget"].(map[string]any)["Properties"]).(map[string]any)
	if got := fmt.Sprint(p["Budget"].(map[string]any)["BudgetLimit"]); got != "map[Amount:200 Unit:USD]" {
		t.Errorf("budget limit %s", got)
	}
	alarms := 0
	for _, n := range asList(p["NotificationsWithSubscribers"]) {
		for _, sub := range asList(n.(map[string]any)["Subscribers"]) {
			m := sub.(map[string]any)
			if m["SubscriptionType"] == "EMAIL" && m["Address"] == "ops@example.com" {
				alarms++
			}
		}
	}
	if alarms == 0 {
		t.Error("the budget e-mails nobody")
	}
}

// The image workflow's job runs in the environment the image role trusts.
func TestImageWorkflowRunsInTheReleaseEnvironment(t *testing.T) {
	var wf struct {
		Jobs map[string]struct {
			Environment any `yaml:"environment"`
		} `yaml:"jobs"`
	}
	readYAML(t, filepath.Join("..", ".github", "workflows", "image.yml"), &wf)
	want := newStack(t, decodeTemplate(t), nil).params["GitHubReleaseEnvironment"]
	if len(wf.Jobs) == 0 {
		t.Fatal("image.yml has no jobs")
	}
	for name, j := range wf.Jobs {
		env := j.Environment
		if m, ok := env.(map[string]any); ok {
			env = m["name"]
		}
		if env != want {
			t.Errorf("job %s runs in environment %v, want %s (the only one the image role trusts)", name, j.Environment, want)
		}
	}
}
