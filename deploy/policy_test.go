package deploy

import (
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The tests in this file check what the template's IAM policies mean, not
// how they read: they resolve the template's intrinsics for sample parameter
// values (the stack as CloudFormation would create it) and evaluate each
// trust policy against sample GitHub OIDC tokens and each role's policy
// against sample S3 and Batch requests, with the parts of IAM's evaluation
// logic the template uses (Allow/Deny, action and resource wildcards,
// StringEquals, StringLike, Null, ForAllValues/ForAnyValue). A construct the
// evaluator does not know fails the test rather than being skipped.
//
// -template evaluates another template, e.g. an older revision:
//
//	git show main:deploy/framefleet.yaml >/tmp/old.yaml
//	go test ./deploy -run 'Trust|Scope|Tagging' -template /tmp/old.yaml
var templateFile = flag.String("template", templatePath, "template the policy tests evaluate")

// --- resolving the template for sample parameters ---------------------------------

const (
	sampleAccount = "123456789012"
	sampleRegion  = "eu-west-1"
	sampleStack   = "ff"
	sampleBucket  = "ff-bucket-1x2y3z"
	sampleRepo    = "acme/films"
)

// stack is the template as CloudFormation would create it for params.
type stack struct {
	t          *testing.T
	tmpl       map[string]any
	params     map[string]string
	conditions map[string]any
}

func newStack(t *testing.T, tmpl map[string]any, params map[string]string) *stack {
	t.Helper()
	all := map[string]string{}
	for name, p := range tmpl["Parameters"].(map[string]any) {
		if d, ok := p.(map[string]any)["Default"]; ok {
			all[name] = fmt.Sprint(d)
		}
	}
	for k, v := range params {
		all[k] = v
	}
	conds, _ := tmpl["Conditions"].(map[string]any)
	return &stack{t: t, tmpl: tmpl, params: all, conditions: conds}
}

func (s *stack) resources() map[string]any { return s.tmpl["Resources"].(map[string]any) }

// exists reports whether the stack creates resource name.
func (s *stack) exists(name string) bool {
	r, ok := s.resources()[name].(map[string]any)
	if !ok {
		return false
	}
	c, ok := r["Condition"].(string)
	return !ok || s.cond(c)
}

func (s *stack) cond(name string) bool {
	c, ok := s.conditions[name]
	if !ok {
		s.t.Fatalf("unknown condition %s", name)
	}
	return s.truth(c)
}

func (s *stack) truth(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		s.t.Fatalf("condition %v is not a function", v)
	}
	switch {
	case m["Condition"] != nil:
		return s.cond(m["Condition"].(string))
	case m["Fn::Not"] != nil:
		return !s.truth(m["Fn::Not"].([]any)[0])
	case m["Fn::And"] != nil:
		for _, c := range m["Fn::And"].([]any) {
			if !s.truth(c) {
				return false
			}
		}
		return true
	case m["Fn::Or"] != nil:
		for _, c := range m["Fn::Or"].([]any) {
			if s.truth(c) {
				return true
			}
		}
		return false
	case m["Fn::Equals"] != nil:
		args := m["Fn::Equals"].([]any)
		return fmt.Sprint(s.resolve(args[0])) == fmt.Sprint(s.resolve(args[1]))
	}
	s.t.Fatalf("condition %v is not evaluated here", v)
	return false
}

// noValue marks AWS::NoValue, dropped from lists and maps.
type noValue struct{}

// ref is what Ref returns: a parameter's value, a pseudo parameter, or a
// resource's physical id (an ARN for the types whose Ref is one).
func (s *stack) ref(name string) any {
	switch name {
	case "AWS::Partition":
		return "aws"
	case "AWS::Region":
		return sampleRegion
	case "AWS::AccountId":
		return sampleAccount
	case "AWS::StackName":
		return sampleStack
	case "AWS::NoValue":
		return noValue{}
	}
	if v, ok := s.params[name]; ok {
		return v
	}
	r, ok := s.resources()[name].(map[string]any)
	if !ok {
		s.t.Fatalf("Ref to unknown %s", name)
	}
	switch r["Type"] {
	case "AWS::S3::Bucket":
		return sampleBucket
	case "AWS::Batch::JobQueue":
		props := r["Properties"].(map[string]any)
		return fmt.Sprintf("arn:aws:batch:%s:%s:job-queue/%s", sampleRegion, sampleAccount, s.resolve(props["JobQueueName"]))
	case "AWS::Batch::JobDefinition":
		props := r["Properties"].(map[string]any)
		return fmt.Sprintf("arn:aws:batch:%s:%s:job-definition/%s:1", sampleRegion, sampleAccount, s.resolve(props["JobDefinitionName"]))
	case "AWS::IAM::OIDCProvider":
		return "arn:aws:iam::" + sampleAccount + ":oidc-provider/token.actions.githubusercontent.com"
	}
	return "physical-id-of-" + name
}

func (s *stack) getAtt(res, attr string) any {
	r, ok := s.resources()[res].(map[string]any)
	if !ok {
		s.t.Fatalf("Fn::GetAtt of unknown %s", res)
	}
	switch {
	case r["Type"] == "AWS::S3::Bucket" && attr == "Arn":
		return "arn:aws:s3:::" + sampleBucket
	case r["Type"] == "AWS::IAM::Role" && attr == "Arn":
		return "arn:aws:iam::" + sampleAccount + ":role/" + sampleStack + "-" + res
	case r["Type"] == "AWS::ECR::Repository" && attr == "Arn":
		return "arn:aws:ecr:" + sampleRegion + ":" + sampleAccount + ":repository/" + s.params["RepositoryName"]
	}
	return "attribute-" + attr + "-of-" + res
}

var subVar = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

func (s *stack) sub(str string, vars map[string]any) string {
	out := subVar.ReplaceAllStringFunc(str, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := vars[name]; ok {
			return fmt.Sprint(s.resolve(v))
		}
		if res, attr, ok := strings.Cut(name, "."); ok {
			return fmt.Sprint(s.getAtt(res, attr))
		}
		return fmt.Sprint(s.ref(name))
	})
	return strings.ReplaceAll(out, "${!", "${")
}

// resolve evaluates every intrinsic in v.
func (s *stack) resolve(v any) any {
	switch x := v.(type) {
	case []any:
		var out []any
		for _, e := range x {
			if r := s.resolve(e); r != (noValue{}) {
				out = append(out, r)
			}
		}
		return out
	case map[string]any:
		if len(x) == 1 {
			for fn, arg := range x {
				switch fn {
				case "Ref":
					return s.ref(arg.(string))
				case "Fn::GetAtt":
					a := arg.([]any)
					return s.getAtt(a[0].(string), a[1].(string))
				case "Fn::Sub":
					if str, ok := arg.(string); ok {
						return s.sub(str, nil)
					}
					a := arg.([]any)
					return s.sub(a[0].(string), a[1].(map[string]any))
				case "Fn::If":
					a := arg.([]any)
					if s.cond(a[0].(string)) {
						return s.resolve(a[1])
					}
					return s.resolve(a[2])
				case "Fn::Join":
					a := arg.([]any)
					var parts []string
					for _, p := range asList(s.resolve(a[1])) {
						parts = append(parts, fmt.Sprint(p))
					}
					return strings.Join(parts, a[0].(string))
				}
				if strings.HasPrefix(fn, "Fn::") {
					s.t.Fatalf("%s is not evaluated here", fn)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			if r := s.resolve(e); r != (noValue{}) {
				out[k] = r
			}
		}
		return out
	}
	return v
}

// role is a created IAM role: its trust policy and its inline policies.
type role struct {
	name     string
	trust    []map[string]any
	policies []map[string]any
}

func (s *stack) role(name string) (role, bool) {
	if !s.exists(name) {
		return role{}, false
	}
	props := s.resolve(s.resources()[name].(map[string]any)["Properties"]).(map[string]any)
	r := role{name: name}
	for _, st := range asList(props["AssumeRolePolicyDocument"].(map[string]any)["Statement"]) {
		r.trust = append(r.trust, st.(map[string]any))
	}
	for _, pol := range asList(props["Policies"]) {
		for _, st := range asList(pol.(map[string]any)["PolicyDocument"].(map[string]any)["Statement"]) {
			r.policies = append(r.policies, st.(map[string]any))
		}
	}
	if len(asList(props["ManagedPolicyArns"])) > 0 {
		s.t.Fatalf("role %s has managed policies, which are not evaluated here", name)
	}
	return r, true
}

// --- evaluating policies --------------------------------------------------------

// request is one authorisation question.
type request struct {
	principal map[string]string // for trust policies: "Federated", "AWS" or "Service" -> value
	action    string
	resource  string              // "" for trust policies
	context   map[string][]string // condition keys; a missing key is absent
}

// globMatch matches IAM's wildcards: * any run of characters, ? exactly one.
func globMatch(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	var re strings.Builder
	re.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(s)
}

func strs(t *testing.T, v any) []string {
	var out []string
	for _, e := range asList(v) {
		s, ok := e.(string)
		if !ok {
			t.Fatalf("%v (%T) is not a string: an intrinsic was left unresolved", e, e)
		}
		out = append(out, s)
	}
	return out
}

// conditionHolds evaluates one statement's Condition block.
func conditionHolds(t *testing.T, cond map[string]any, ctx map[string][]string) bool {
	for op, keys := range cond {
		for key, want := range keys.(map[string]any) {
			wants := strs(t, want)
			got, present := ctx[key]
			if !conditionOp(t, op, wants, got, present) {
				return false
			}
		}
	}
	return true
}

func conditionOp(t *testing.T, op string, wants, got []string, present bool) bool {
	set, base, _ := strings.Cut(op, ":")
	if base == "" {
		set, base = "", op
	}
	var one func(want, got string) bool
	switch base {
	case "StringEquals":
		one = func(w, g string) bool { return w == g }
	case "StringLike":
		one = func(w, g string) bool { return globMatch(w, g, false) }
	case "StringNotEquals":
		return !conditionOp(t, strings.Replace(op, "StringNotEquals", "StringEquals", 1), wants, got, present)
	case "Null":
		return (wants[0] == "true") == !present
	case "Bool":
		one = func(w, g string) bool { return strings.EqualFold(w, g) }
	default:
		t.Fatalf("condition operator %s is not evaluated here", op)
	}
	anyWant := func(g string) bool { return slices.ContainsFunc(wants, func(w string) bool { return one(w, g) }) }
	switch set {
	case "ForAllValues":
		for _, g := range got { // true for an absent key, as in IAM
			if !anyWant(g) {
				return false
			}
		}
		return true
	case "ForAnyValue":
		return slices.ContainsFunc(got, anyWant)
	case "":
		if !present || len(got) != 1 {
			return false
		}
		return anyWant(got[0])
	}
	t.Fatalf("condition set operator %s is not evaluated here", set)
	return false
}

func statementMatches(t *testing.T, st map[string]any, req request) bool {
	if _, ok := st["NotAction"]; ok {
		t.Fatal("NotAction is not evaluated here")
	}
	if _, ok := st["NotResource"]; ok {
		t.Fatal("NotResource is not evaluated here")
	}
	if !slices.ContainsFunc(strs(t, st["Action"]), func(a string) bool { return globMatch(a, req.action, true) }) {
		return false
	}
	if req.principal != nil {
		p, ok := st["Principal"].(map[string]any)
		if !ok {
			t.Fatalf("trust statement without a principal map: %v", st)
		}
		match := false
		for kind, v := range p {
			match = match || slices.Contains(strs(t, v), req.principal[kind])
		}
		if !match {
			return false
		}
	} else if !slices.ContainsFunc(strs(t, st["Resource"]), func(r string) bool { return globMatch(r, req.resource, false) }) {
		return false
	}
	if c, ok := st["Condition"].(map[string]any); ok {
		return conditionHolds(t, c, req.context)
	}
	return true
}

// allowed is IAM's decision for one policy: an explicit Deny wins, else an
// Allow allows, else the implicit deny.
func allowed(t *testing.T, statements []map[string]any, req request) bool {
	allow := false
	for _, st := range statements {
		if !statementMatches(t, st, req) {
			continue
		}
		switch st["Effect"] {
		case "Deny":
			return false
		case "Allow":
			allow = true
		default:
			t.Fatalf("statement effect %v", st["Effect"])
		}
	}
	return allow
}

// --- the evaluator itself ---------------------------------------------------------

func TestPolicyEvaluator(t *testing.T) {
	allowS3 := map[string]any{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/runs/*/frames/?.png"}
	deny := map[string]any{"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/runs/secret/*"}
	cond := map[string]any{"Effect": "Allow", "Action": "batch:TagResource", "Resource": "*", "Condition": map[string]any{
		"StringEquals":             map[string]any{"aws:RequestTag/scope": "p"},
		"Null":                     map[string]any{"aws:ResourceTag/scope": "true"},
		"ForAllValues:StringLike":  map[string]any{"aws:TagKeys": []any{"framefleet*"}},
		"ForAnyValue:StringEquals": map[string]any{"k": []any{"a", "b"}},
	}}
	tests := []struct {
		name string
		sts  []map[string]any
		req  request
		want bool
	}{
		{"wildcards match", []map[string]any{allowS3}, request{action: "s3:GetObject", resource: "arn:aws:s3:::b/runs/r/frames/1.png"}, true},
		{"? is one character", []map[string]any{allowS3}, request{action: "s3:GetObject", resource: "arn:aws:s3:::b/runs/r/frames/12.png"}, false},
		{"actions fold case", []map[string]any{allowS3}, request{action: "S3:getobject", resource: "arn:aws:s3:::b/runs/r/frames/1.png"}, true},
		{"other action", []map[string]any{allowS3}, request{action: "s3:PutObject", resource: "arn:aws:s3:::b/runs/r/frames/1.png"}, false},
		{"deny wins", []map[string]any{allowS3, deny}, request{action: "s3:GetObject", resource: "arn:aws:s3:::b/runs/secret/frames/1.png"}, false},
		{"conditions hold", []map[string]any{cond}, request{action: "batch:TagResource", resource: "x", context: map[string][]string{
			"aws:RequestTag/scope": {"p"}, "aws:TagKeys": {"framefleet", "framefleet-run"}, "k": {"z", "b"}}}, true},
		{"Null: the key is present", []map[string]any{cond}, request{action: "batch:TagResource", resource: "x", context: map[string][]string{
			"aws:RequestTag/scope": {"p"}, "aws:ResourceTag/scope": {"t"}, "k": {"a"}}}, false},
		{"ForAllValues: one key is not allowed", []map[string]any{cond}, request{action: "batch:TagResource", resource: "x", context: map[string][]string{
			"aws:RequestTag/scope": {"p"}, "aws:TagKeys": {"framefleet", "owner"}, "k": {"a"}}}, false},
		{"ForAnyValue: none matches", []map[string]any{cond}, request{action: "batch:TagResource", resource: "x", context: map[string][]string{
			"aws:RequestTag/scope": {"p"}, "k": {"c"}}}, false},
		{"StringEquals: the key is missing", []map[string]any{cond}, request{action: "batch:TagResource", resource: "x", context: map[string][]string{"k": {"a"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allowed(t, tt.sts, tt.req); got != tt.want {
				t.Errorf("allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStackResolvesIntrinsics(t *testing.T) {
	tmpl := map[string]any{
		"Parameters": map[string]any{"P": map[string]any{"Default": "d"}, "Q": map[string]any{}},
		"Conditions": map[string]any{"HasQ": map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "Q"}, ""}}}}},
		"Resources":  map[string]any{"Bucket": map[string]any{"Type": "AWS::S3::Bucket"}},
	}
	s := newStack(t, tmpl, map[string]string{"Q": "q"})
	v := s.resolve([]any{
		map[string]any{"Fn::Sub": "${Bucket.Arn}/${P}/${Q}/${!Literal}"},
		map[string]any{"Fn::If": []any{"HasQ", "yes", "no"}},
		map[string]any{"Fn::Sub": []any{"${X}-${AWS::Region}", map[string]any{"X": map[string]any{"Ref": "P"}}}},
		map[string]any{"Ref": "AWS::NoValue"},
	})
	want := []any{"arn:aws:s3:::" + sampleBucket + "/d/q/${Literal}", "yes", "d-" + sampleRegion}
	if fmt.Sprint(v) != fmt.Sprint(want) {
		t.Errorf("resolved %v, want %v", v, want)
	}
}
