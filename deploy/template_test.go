// Package deploy holds the CloudFormation template and the worker image's
// tests. cfn-lint checks that the template is valid CloudFormation (every
// resource, property, reference and region); the tests here check what
// cfn-lint cannot know: what the template promises framefleet's users
// (permissions, isolation, expiry) and that it agrees with the code and the
// docs.
package deploy

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/framefleet/framefleet/internal/testenv"
)

const templatePath = "framefleet.yaml"

// TestTemplatePassesCfnLint runs cfn-lint on the template, as `make lint`
// does. In CI a missing cfn-lint fails the test.
func TestTemplatePassesCfnLint(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		msg := "cfn-lint is not installed: pip install cfn-lint"
		if testenv.CI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out, err := exec.Command(lint, "--", templatePath).CombinedOutput()
	if err != nil {
		t.Fatalf("cfn-lint %s: %v\n%s", templatePath, err, out)
	}
}

// --- reading the template ----------------------------------------------------

// shortForms maps CloudFormation's YAML short-form tags to their long form.
var shortForms = map[string]string{
	"!Ref": "Ref", "!Condition": "Condition", "!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub", "!If": "Fn::If",
	"!Not": "Fn::Not", "!Equals": "Fn::Equals", "!And": "Fn::And", "!Or": "Fn::Or", "!Base64": "Fn::Base64",
	"!Select": "Fn::Select", "!GetAZs": "Fn::GetAZs", "!Join": "Fn::Join", "!Split": "Fn::Split",
	"!FindInMap": "Fn::FindInMap", "!ImportValue": "Fn::ImportValue", "!Cidr": "Fn::Cidr",
}

// decodeYAML turns a template into plain values, short forms into long forms
// ({"Ref": x}, {"Fn::GetAtt": [res, attr]}, ...).
func decodeYAML(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, errors.New("empty document")
		}
		return decodeYAML(n.Content[0])
	case yaml.AliasNode:
		return decodeYAML(n.Alias)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		fn, ok := shortForms[n.Tag]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
		}
		plain := *n
		plain.Tag = ""
		if n.Kind == yaml.ScalarNode {
			plain.Tag = "!!str"
		}
		arg, err := decodeYAML(&plain)
		if err != nil {
			return nil, err
		}
		if s, ok := arg.(string); ok && fn == "Fn::GetAtt" {
			res, attr, _ := strings.Cut(s, ".")
			arg = []any{res, attr}
		}
		return map[string]any{fn: arg}, nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := decodeYAML(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			v, err := decodeYAML(item)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	}
	var v any
	err := n.Decode(&v)
	return v, err
}

func decodeTemplate(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(*templateFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	v, err := decodeYAML(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

func resource(t *testing.T, tmpl map[string]any, name string) map[string]any {
	t.Helper()
	r, ok := tmpl["Resources"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("no resource %s", name)
	}
	return r
}

func props(t *testing.T, tmpl map[string]any, name string) map[string]any {
	t.Helper()
	return resource(t, tmpl, name)["Properties"].(map[string]any)
}

func ref(name string) map[string]any { return map[string]any{"Ref": name} }

func equal(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// alternatives expands Fn::If into the values it may produce, dropping AWS::NoValue.
func alternatives(v any) []any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return []any{v}
	}
	if r, ok := m["Ref"]; ok && r == "AWS::NoValue" {
		return nil
	}
	args, ok := m["Fn::If"].([]any)
	if !ok || len(args) != 3 {
		return []any{v}
	}
	return append(alternatives(args[1]), alternatives(args[2])...)
}

// statements returns the statements of every inline policy of a role.
func statements(t *testing.T, tmpl map[string]any, role string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, pol := range props(t, tmpl, role)["Policies"].([]any) {
		doc := pol.(map[string]any)["PolicyDocument"].(map[string]any)
		for _, s := range doc["Statement"].([]any) {
			out = append(out, s.(map[string]any))
		}
	}
	return out
}

func actions(s map[string]any) []string {
	var out []string
	for _, a := range asList(s["Action"]) {
		out = append(out, a.(string))
	}
	return out
}

// condition returns the value of a condition key under an operator, or nil.
func condition(s map[string]any, operator, key string) any {
	c, _ := s["Condition"].(map[string]any)
	op, _ := c[operator].(map[string]any)
	return op[key]
}

// userData is the launch template's user data script.
func userData(t *testing.T, tmpl map[string]any) string {
	t.Helper()
	data := props(t, tmpl, "LaunchTemplate")["LaunchTemplateData"].(map[string]any)
	ud, ok := data["UserData"].(map[string]any)["Fn::Base64"].(string)
	if !ok {
		t.Fatalf("UserData is not !Base64 of a literal: %v", data["UserData"])
	}
	return ud
}

// --- what the template promises -------------------------------------------------

func TestComputeEnvironments(t *testing.T) {
	tmpl := decodeTemplate(t)
	tests := []struct {
		name, typ, strategy, maxParam string
	}{
		{"SpotComputeEnvironment", "SPOT", "SPOT_PRICE_CAPACITY_OPTIMIZED", "SpotMaxvCpus"},
		{"OnDemandComputeEnvironment", "EC2", "BEST_FIT_PROGRESSIVE", "OnDemandMaxvCpus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := props(t, tmpl, tt.name)
			if p["Type"] != "MANAGED" {
				t.Errorf("Type = %v, want MANAGED", p["Type"])
			}
			cr := p["ComputeResources"].(map[string]any)
			if cr["Type"] != tt.typ || cr["AllocationStrategy"] != tt.strategy {
				t.Errorf("compute resources %v/%v, want %s/%s", cr["Type"], cr["AllocationStrategy"], tt.typ, tt.strategy)
			}
			if cr["MinvCpus"] != 0 {
				t.Errorf("MinvCpus = %v, want 0 so idle environments cost nothing", cr["MinvCpus"])
			}
			if !equal(cr["MaxvCpus"], ref(tt.maxParam)) {
				t.Errorf("MaxvCpus = %v, want !Ref %s", cr["MaxvCpus"], tt.maxParam)
			}
			lt := cr["LaunchTemplate"].(map[string]any)
			if !equal(lt["LaunchTemplateId"], ref("LaunchTemplate")) {
				t.Errorf("compute environment does not use the launch template: %v", lt)
			}
		})
	}
}

// Spot draining keeps new jobs off a doomed instance; the stop timeout is
// left at ECS's 30 s default, which the worker's stop budget fits
// (container.stopBudget): raising it would promise time a reclaimed host
// does not give (standalone tasks are not drained, the host dies at the
// two-minute mark).
func TestUserDataConfiguresTheECSAgent(t *testing.T) {
	ud := userData(t, decodeTemplate(t))
	for _, want := range []string{
		"Content-Type: multipart/mixed", // Batch rejects user data that is not MIME multi-part
		"\nECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n",
		">>/etc/ecs/ecs.config",
	} {
		if !strings.Contains(ud, want) {
			t.Errorf("user data lacks %q:\n%s", want, ud)
		}
	}
	if strings.Contains(ud, "ECS_CONTAINER_STOP_TIMEOUT") {
		t.Errorf("user data sets ECS_CONTAINER_STOP_TIMEOUT; the worker's stop budget is sized for ECS's 30 s default:\n%s", ud)
	}
}

// A tag names one image for good: job definitions name tags.
func TestRepositoryTagsAreImmutable(t *testing.T) {
	if m := props(t, decodeTemplate(t), "Repository")["ImageTagMutability"]; m != "IMMUTABLE" {
		t.Errorf("ImageTagMutability = %v, want IMMUTABLE", m)
	}
}

func imageWorkflow(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", ".github", "workflows", "image.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// With immutable tags the image workflow must push only tags that name one
// build: no moving tag (latest, main, …), and a check that the tag is new.
func TestImageWorkflowPushesOnlyNewTags(t *testing.T) {
	wf := imageWorkflow(t)
	for _, moving := range []string{":latest", ":main", ":stable", ":edge"} {
		if strings.Contains(wf, moving) {
			t.Errorf("image.yml pushes the moving tag %s, which an immutable repository refuses the second time", moving)
		}
	}
	if !strings.Contains(wf, "ecr describe-images") {
		t.Error("image.yml does not check that its tags are new before pushing (aws ecr describe-images)")
	}
}

// The workflow that holds the image role runs third-party code: every
// action is pinned to a commit (a tag can be moved), and the checkout does
// not leave its token in .git/config for later steps.
func TestImageWorkflowPinsActionsAndDropsCredentials(t *testing.T) {
	wf := imageWorkflow(t)
	uses := regexp.MustCompile(`(?m)^\s*(?:-\s+)?uses:\s*(\S+)`).FindAllStringSubmatch(wf, -1)
	if len(uses) == 0 {
		t.Fatal("image.yml uses no actions: the test reads nothing")
	}
	pinned := regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)
	for _, u := range uses {
		if !pinned.MatchString(u[1]) {
			t.Errorf("action %s is not pinned to a full commit SHA", u[1])
		}
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(wf), &doc); err != nil {
		t.Fatal(err)
	}
	checkouts := 0
	for _, job := range doc["jobs"].(map[string]any) {
		for _, step := range job.(map[string]any)["steps"].([]any) {
			st := step.(map[string]any)
			if u, _ := st["uses"].(string); strings.HasPrefix(u, "actions/checkout@") {
				checkouts++
				with, _ := st["with"].(map[string]any)
				if with["persist-credentials"] != false {
					t.Errorf("checkout step keeps its credentials (persist-credentials: %v), want false", with["persist-credentials"])
				}
			}
		}
	}
	if checkouts == 0 {
		t.Error("image.yml has no checkout step: the test reads nothing")
	}
}

// framefleet.example.yaml's image tag must be one the workflow pushes:
// <version>-blender<Blender version>.
func TestExampleImageTagIsOneTheWorkflowPushes(t *testing.T) {
	var ex struct {
		Batch struct {
			Image          string `yaml:"image"`
			BlenderVersion string `yaml:"blender_version"`
		} `yaml:"batch"`
	}
	readYAML(t, filepath.Join("..", "framefleet.example.yaml"), &ex)
	if !strings.Contains(imageWorkflow(t), "}}-blender${{ steps.probe.outputs.blender-version }}") {
		t.Fatal("image.yml no longer tags images <version>-blender<Blender version>: update this test and the example")
	}
	_, tag, ok := strings.Cut(ex.Batch.Image[strings.LastIndexByte(ex.Batch.Image, '/')+1:], ":")
	want := regexp.MustCompile(`^(v[0-9][A-Za-z0-9_.-]*|dev-[0-9a-f]{12})-blender` + regexp.QuoteMeta(ex.Batch.BlenderVersion) + `$`)
	if !ok || !want.MatchString(tag) {
		t.Errorf("example image %q: want a tag the image workflow pushes, <release>-blender%s", ex.Batch.Image, ex.Batch.BlenderVersion)
	}
}

func TestJobQueueTriesSpotFirst(t *testing.T) {
	p := props(t, decodeTemplate(t), "JobQueue")
	orders := alternatives(p["ComputeEnvironmentOrder"])
	if len(orders) != 2 {
		t.Fatalf("want a Spot+On-Demand order and a Spot-only order, got %v", orders)
	}
	for _, o := range orders {
		var first any
		for _, e := range o.([]any) {
			if e.(map[string]any)["Order"] == 1 {
				first = e.(map[string]any)["ComputeEnvironment"]
			}
		}
		if !equal(first, ref("SpotComputeEnvironment")) {
			t.Errorf("order 1 is %v, want the Spot compute environment", first)
		}
	}
	if _, ok := p["SchedulingPolicyArn"]; ok {
		t.Error("the queue has a scheduling policy: its jobs would need a share identifier, which framefleet does not send")
	}
}

func TestBucketRefusesPublicAccess(t *testing.T) {
	pab := props(t, decodeTemplate(t), "Bucket")["PublicAccessBlockConfiguration"].(map[string]any)
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if pab[k] != true {
			t.Errorf("PublicAccessBlockConfiguration.%s = %v, want true", k, pab[k])
		}
	}
}

// The workers' logs go to a group of the stack that expires them (Batch's
// default group keeps them forever).
func TestLogGroupHasRetention(t *testing.T) {
	tmpl := decodeTemplate(t)
	p := props(t, tmpl, "LogGroup")
	if !equal(p["RetentionInDays"], ref("LogRetentionDays")) {
		t.Errorf("RetentionInDays = %v, want !Ref LogRetentionDays", p["RetentionInDays"])
	}
	out := tmpl["Outputs"].(map[string]any)["LogGroupName"].(map[string]any)
	if !equal(out["Value"], ref("LogGroup")) {
		t.Errorf("output LogGroupName = %v, want !Ref LogGroup", out["Value"])
	}
}

// Roles that AWS services assume for the account name the account
// (aws:SourceAccount), so no other account's use of the service can get
// them (the confused deputy). EC2's instance-profile role is the exception
// (see the template).
func TestServiceTrustPoliciesNameTheAccount(t *testing.T) {
	tmpl := decodeTemplate(t)
	checked := 0
	for name, r := range tmpl["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] != "AWS::IAM::Role" {
			continue
		}
		doc := res["Properties"].(map[string]any)["AssumeRolePolicyDocument"].(map[string]any)
		for _, st := range doc["Statement"].([]any) {
			s := st.(map[string]any)
			principal, _ := s["Principal"].(map[string]any)
			for _, svc := range asList(principal["Service"]) {
				if svc == "ec2.amazonaws.com" {
					continue
				}
				checked++
				if v := condition(s, "StringEquals", "aws:SourceAccount"); !equal(v, ref("AWS::AccountId")) {
					t.Errorf("%s trusts %v without aws:SourceAccount = the stack's account (got %v)", name, svc, s["Condition"])
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no service trust policy found: the test reads nothing")
	}
}

// --- the template, the README and framefleet.example.yaml agree ----------------

// The README tells which framefleet.yaml key each output feeds; an output it
// does not mention is undocumented.
func TestREADMEDocumentsEveryOutput(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range decodeTemplate(t)["Outputs"].(map[string]any) {
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README.md does not mention output `%s`", name)
		}
	}
}

// Each output or parameter that tells users which framefleet.yaml key to set
// names a key framefleet.example.yaml has: users copy from both.
func TestTemplateNamesExampleConfigKeys(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "framefleet.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var example map[string]any
	if err := yaml.Unmarshal(b, &example); err != nil {
		t.Fatal(err)
	}
	has := func(key string) bool { // "batch.log_group", or a bare key at the top or in batch
		// An optional key may be shown commented out.
		leaf := key[strings.LastIndexByte(key, '.')+1:]
		if regexp.MustCompile(`(?m)^\s*#\s*` + regexp.QuoteMeta(leaf) + `:`).Match(b) {
			return true
		}
		var node any = example
		parts := strings.Split(key, ".")
		if len(parts) == 1 {
			if _, ok := example[key]; ok {
				return true
			}
			parts = []string{"batch", key}
		}
		for _, p := range parts {
			m, ok := node.(map[string]any)
			if !ok {
				return false
			}
			if node, ok = m[p]; !ok {
				return false
			}
		}
		return true
	}
	keyRef := regexp.MustCompile("framefleet\\.yaml `([a-z_.]+)`")
	tmpl := decodeTemplate(t)
	named := 0
	for _, section := range []string{"Outputs", "Parameters"} {
		for name, v := range tmpl[section].(map[string]any) {
			desc, _ := v.(map[string]any)["Description"].(string)
			for _, m := range keyRef.FindAllStringSubmatch(desc, -1) {
				named++
				if !has(m[1]) {
					t.Errorf("%s %s names framefleet.yaml `%s`, which framefleet.example.yaml does not have", section, name, m[1])
				}
			}
		}
	}
	if named < 6 {
		t.Errorf("only %d descriptions name a framefleet.yaml key: the test reads too little", named)
	}
}
