package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const templatePath = "framefleet.yaml"

func loadSpec(t *testing.T) *Spec {
	t.Helper()
	spec, err := LoadSpec(filepath.Join("testdata", "resource-spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func checkFile(t *testing.T, spec *Spec, path string) []Problem {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := Check(b, spec)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return problems
}

func decodeTemplate(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestTemplateHasNoProblems(t *testing.T) {
	spec := loadSpec(t)
	for _, p := range checkFile(t, spec, templatePath) {
		t.Errorf("%s", p)
	}
}

func TestSpecCoversEveryTemplateType(t *testing.T) {
	// The spec is generated for exactly the types the template uses: a type
	// listed there and used nowhere means the template and spec drifted apart.
	spec := loadSpec(t)
	used := map[string]bool{}
	for _, r := range decodeTemplate(t)["Resources"].(map[string]any) {
		used[r.(map[string]any)["Type"].(string)] = true
	}
	for typ, ts := range spec.Types {
		if !used[typ] {
			t.Errorf("resource-spec.json lists %s, which framefleet.yaml does not use", typ)
		}
		if len(ts.Properties) == 0 {
			t.Errorf("resource-spec.json: %s has no properties", typ)
		}
	}
}

func TestCheckerAcceptsGoodTemplate(t *testing.T) {
	spec := loadSpec(t)
	for _, p := range checkFile(t, spec, filepath.Join("testdata", "good.yaml")) {
		t.Errorf("good.yaml: %s", p)
	}
}

// Each bad template is testdata/good.yaml with one defect; the checker must
// report exactly one problem, at the right place, saying what is wrong.
func TestCheckerCatches(t *testing.T) {
	spec := loadSpec(t)
	tests := []struct {
		file     string
		wantPath string
		want     string
	}{
		{"wrong-type", "Resources.Bucket.Type", `unknown resource type "AWS::S3::Buckets" (did you mean AWS::S3::Bucket?)`},
		{"misspelled-property", "Resources.Bucket.Properties.BucketEncription", `unknown property "BucketEncription" of AWS::S3::Bucket (did you mean BucketEncryption?)`},
		{"misspelled-nested-property", "Resources.Bucket.Properties.LifecycleConfiguration.Rules[0].ExpirationInDay", `unknown property "ExpirationInDay" of AWS::S3::Bucket (did you mean ExpirationInDays?)`},
		{"dangling-ref", "Outputs.BucketArn.Value.Ref", "Ref Bukket: no such resource, parameter or pseudo parameter (did you mean Bucket?)"},
		{"dangling-getatt", "Outputs.BucketArn.Value.Fn::GetAtt", "GetAtt Buckett.Arn: no such resource (did you mean Bucket?)"},
		{"unknown-attribute", "Outputs.BucketArn.Value.Fn::GetAtt", "AWS::S3::Bucket has no attribute Arnn"},
		{"dangling-sub", "Resources.Queue.Properties.ComputeEnvironmentOrder[0].ComputeEnvironment.Fn::Sub", "Ref SpotEnvironment: no such resource"},
		{"missing-required", "Resources.Queue.Properties", "missing required property Priority of AWS::Batch::JobQueue"},
		{"missing-compute-environment-order", "Resources.Queue.Properties", "AWS::Batch::JobQueue needs one of ComputeEnvironmentOrder or ServiceEnvironmentOrder"},
		{"parameter-without-description", "Parameters.RetentionDays", "parameter has no Description"},
		{"undefined-condition", "Resources.Bucket.Condition", "condition Sometimes is not defined in Conditions"},
		{"undefined-if-condition", "Outputs.Queue.Value.Fn::If", "condition Never is not defined in Conditions"},
		{"dangling-depends-on", "Resources.Queue.DependsOn", "DependsOn Buckt: no such resource (did you mean Bucket?)"},
		{"unused-parameter", "Parameters.RetentionDays", "parameter is never used"},
		{"unknown-tag", "Outputs.BucketArn.Value", "unknown tag !Reff"},
		{"duplicate-key", "Resources.Bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm", "duplicate key"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file+".yaml"] = true
		t.Run(tt.file, func(t *testing.T) {
			problems := checkFile(t, spec, filepath.Join("testdata", "bad", tt.file+".yaml"))
			if len(problems) != 1 {
				t.Fatalf("got %d problems, want exactly 1:\n%s", len(problems), problemList(problems))
			}
			if p := problems[0]; p.Path != tt.wantPath || !strings.Contains(p.Message, tt.want) {
				t.Errorf("got  %s\nwant %s: ...%s...", p, tt.wantPath, tt.want)
			}
		})
	}
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no test case", f)
		}
	}
}

func TestCheckRejectsNonYAML(t *testing.T) {
	if _, err := Check([]byte("Resources: [unclosed"), loadSpec(t)); err == nil {
		t.Fatal("Check accepted text that is not YAML")
	}
}

func problemList(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	return b.String()
}

// --- what the template must say, beyond being well-formed -----------------

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

func TestLaunchTemplateDrainsSpotInstances(t *testing.T) {
	data := props(t, decodeTemplate(t), "LaunchTemplate")["LaunchTemplateData"].(map[string]any)
	userData, ok := data["UserData"].(map[string]any)["Fn::Base64"].(string)
	if !ok {
		t.Fatalf("UserData is not !Base64 of a literal: %v", data["UserData"])
	}
	for _, want := range []string{
		"Content-Type: multipart/mixed", // Batch rejects user data that is not MIME multi-part
		"\nECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n",
		"\nECS_CONTAINER_STOP_TIMEOUT=",
		">>/etc/ecs/ecs.config",
	} {
		if !strings.Contains(userData, want) {
			t.Errorf("user data lacks %q:\n%s", want, userData)
		}
	}
}

// Containers get JobRole's credentials from the ECS agent; with hop limit 1
// they cannot reach IMDS and borrow the instance role instead.
func TestLaunchTemplateKeepsContainersFromIMDS(t *testing.T) {
	data := props(t, decodeTemplate(t), "LaunchTemplate")["LaunchTemplateData"].(map[string]any)
	md, _ := data["MetadataOptions"].(map[string]any)
	if md["HttpTokens"] != "required" {
		t.Errorf("HttpTokens = %v, want required (IMDSv2 only)", md["HttpTokens"])
	}
	if !equal(md["HttpPutResponseHopLimit"], 1) {
		t.Errorf("HttpPutResponseHopLimit = %v, want 1 (containers must not reach IMDS)", md["HttpPutResponseHopLimit"])
	}
}

// A tag names one image for good: job definitions name tags.
func TestRepositoryTagsAreImmutable(t *testing.T) {
	if m := props(t, decodeTemplate(t), "Repository")["ImageTagMutability"]; m != "IMMUTABLE" {
		t.Errorf("ImageTagMutability = %v, want IMMUTABLE", m)
	}
}

// With immutable tags the image workflow must push only tags that name one
// build: no moving tag (latest, main, …), and a check that the tag is new.
func TestImageWorkflowPushesOnlyNewTags(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", ".github", "workflows", "image.yml"))
	if err != nil {
		t.Fatal(err)
	}
	wf := string(b)
	for _, moving := range []string{":latest", ":main", ":stable", ":edge"} {
		if strings.Contains(wf, moving) {
			t.Errorf("image.yml pushes the moving tag %s, which an immutable repository refuses the second time", moving)
		}
	}
	if !strings.Contains(wf, "ecr describe-images") {
		t.Error("image.yml does not check that its tags are new before pushing (aws ecr describe-images)")
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
}

func TestBucketLifecycle(t *testing.T) {
	p := props(t, decodeTemplate(t), "Bucket")
	pab := p["PublicAccessBlockConfiguration"].(map[string]any)
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if pab[k] != true {
			t.Errorf("PublicAccessBlockConfiguration.%s = %v, want true", k, pab[k])
		}
	}
	var intermediate, runs, cache bool
	for _, r := range p["LifecycleConfiguration"].(map[string]any)["Rules"].([]any) {
		for _, alt := range alternatives(r) {
			rule := alt.(map[string]any)
			switch {
			case rule["Prefix"] == "runs/" && len(asList(rule["TagFilters"])) == 1:
				tag := asList(rule["TagFilters"])[0].(map[string]any)
				intermediate = tag["Key"] == "framefleet-retention" && tag["Value"] == "intermediate" &&
					equal(rule["ExpirationInDays"], ref("IntermediateRetentionDays"))
			case rule["Prefix"] == "runs/":
				runs = equal(rule["ExpirationInDays"], ref("RunRetentionDays"))
			case rule["Prefix"] == "cache/":
				cache = equal(rule["ExpirationInDays"], ref("RunRetentionDays"))
			}
		}
	}
	if !intermediate || !runs || !cache {
		t.Errorf("lifecycle rules: intermediate frames/segments %v, runs %v, cache %v; want all", intermediate, runs, cache)
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

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

func TestJobRoleReachesOnlyItsBucket(t *testing.T) {
	allowed := []string{"s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:ListBucket", "s3:AbortMultipartUpload"}
	bucketResources := []any{
		map[string]any{"Fn::GetAtt": []any{"Bucket", "Arn"}},
		map[string]any{"Fn::Sub": "${Bucket.Arn}/*"},
	}
	for _, s := range statements(t, decodeTemplate(t), "JobRole") {
		if s["Effect"] != "Allow" {
			continue
		}
		actions := asList(s["Action"])
		if a, ok := s["Action"].(string); ok {
			actions = []any{a}
		}
		for _, a := range actions {
			if !slices.Contains(allowed, a.(string)) {
				t.Errorf("job role allows %v, want only %v", a, allowed)
			}
		}
		resources := asList(s["Resource"])
		if resources == nil {
			resources = []any{s["Resource"]}
		}
		for _, r := range resources {
			if !slices.ContainsFunc(bucketResources, func(b any) bool { return equal(b, r) }) {
				t.Errorf("job role reaches %v, want only the bucket and its objects", r)
			}
		}
	}
}

func TestGitHubRolesTrustOnlyTheRepository(t *testing.T) {
	tmpl := decodeTemplate(t)
	for _, role := range []string{"GitHubRenderRole", "GitHubImageRole"} {
		t.Run(role, func(t *testing.T) {
			if c := resource(t, tmpl, role)["Condition"]; c != "CreateGitHubRoles" {
				t.Errorf("Condition = %v, want CreateGitHubRoles (no role without GitHubRepo)", c)
			}
			doc := props(t, tmpl, role)["AssumeRolePolicyDocument"].(map[string]any)
			for _, s := range doc["Statement"].([]any) {
				st := s.(map[string]any)
				cond := st["Condition"].(map[string]any)
				aud := cond["StringEquals"].(map[string]any)["token.actions.githubusercontent.com:aud"]
				if aud != "sts.amazonaws.com" {
					t.Errorf("aud condition = %v, want sts.amazonaws.com", aud)
				}
				sub := fmt.Sprint(cond["StringLike"].(map[string]any)["token.actions.githubusercontent.com:sub"])
				if !strings.Contains(sub, "repo:${GitHubRepo}:") {
					t.Errorf("sub condition %s does not pin the repository", sub)
				}
			}
		})
	}
}

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
