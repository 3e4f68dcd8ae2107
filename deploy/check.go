// Package deploy holds framefleet's CloudFormation template (framefleet.yaml)
// and a static checker for it. The checker knows the resource types the
// template uses from a checked-in resource specification
// (testdata/resource-spec.json) and reports what CloudFormation would reject
// only at deploy time: unknown types and properties, missing required
// properties, and references to things that do not exist.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/framefleet/framefleet/internal/textdist"

	"gopkg.in/yaml.v3"
)

// Spec lists the resource types the checker knows.
type Spec struct {
	Source string              `json:"source"`
	Types  map[string]TypeSpec `json:"types"`
}

// TypeSpec is one resource type: its properties, which are required, and the
// attributes Fn::GetAtt may read.
type TypeSpec struct {
	Properties map[string]PropSpec `json:"properties"`
	Required   []string            `json:"required"`
	// RequiredOneOf: at least one group must be present in full.
	RequiredOneOf [][]string `json:"required_one_of"`
	Attributes    []string   `json:"attributes"`
}

// PropSpec is a property. Properties is nil when its value is free-form (a
// policy document, a string); List marks a list of objects with those properties.
type PropSpec struct {
	Properties map[string]PropSpec `json:"properties"`
	Required   []string            `json:"required"`
	List       bool                `json:"list"`
}

// LoadSpec reads a resource specification written by testdata/gen-resource-spec.py.
func LoadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read resource spec: %w", err)
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("resource spec %s: %w", path, err)
	}
	if len(s.Types) == 0 {
		return nil, fmt.Errorf("resource spec %s lists no types", path)
	}
	return &s, nil
}

// Problem is one defect in a template, at a dotted path such as
// Resources.Bucket.Properties.BucketEncryption.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// vocabulary is the fixed set of names CloudFormation defines, built per check
// (no package-level state).
type vocabulary struct {
	shortForms       map[string]string // YAML short-form tag -> intrinsic function
	functions        map[string]bool   // long-form intrinsic functions
	pseudoParameters map[string]bool
	topLevelKeys     map[string]bool
	resourceKeys     map[string]bool
	parameterKeys    map[string]bool
	outputKeys       map[string]bool
	deletionPolicies map[string]bool
	plainParamTypes  map[string]bool
}

func newVocabulary() vocabulary {
	return vocabulary{
		shortForms: map[string]string{
			"!Ref": "Ref", "!Condition": "Condition",
			"!Sub": "Fn::Sub", "!GetAtt": "Fn::GetAtt", "!If": "Fn::If", "!Equals": "Fn::Equals",
			"!Not": "Fn::Not", "!And": "Fn::And", "!Or": "Fn::Or", "!Join": "Fn::Join",
			"!Select": "Fn::Select", "!Split": "Fn::Split", "!GetAZs": "Fn::GetAZs",
			"!ImportValue": "Fn::ImportValue", "!FindInMap": "Fn::FindInMap", "!Base64": "Fn::Base64",
			"!Cidr": "Fn::Cidr", "!Transform": "Fn::Transform",
		},
		functions: set("Fn::Sub", "Fn::GetAtt", "Fn::If", "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or",
			"Fn::Join", "Fn::Select", "Fn::Split", "Fn::GetAZs", "Fn::ImportValue", "Fn::FindInMap",
			"Fn::Base64", "Fn::Cidr", "Fn::Transform", "Fn::Length", "Fn::ToJsonString",
			// Rules-only functions.
			"Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn", "Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll"),
		pseudoParameters: set("AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
			"AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"),
		topLevelKeys: set("AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Rules",
			"Mappings", "Conditions", "Transform", "Resources", "Outputs"),
		resourceKeys: set("Type", "Properties", "DependsOn", "Condition", "Metadata", "DeletionPolicy",
			"UpdateReplacePolicy", "UpdatePolicy", "CreationPolicy"),
		parameterKeys: set("Type", "Default", "Description", "AllowedValues", "AllowedPattern",
			"ConstraintDescription", "MaxLength", "MinLength", "MaxValue", "MinValue", "NoEcho"),
		outputKeys:       set("Value", "Description", "Export", "Condition"),
		deletionPolicies: set("Delete", "Retain", "RetainExceptOnCreate", "Snapshot"),
		plainParamTypes:  set("String", "Number", "List<Number>", "CommaDelimitedList"),
	}
}

func set(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// Check parses a CloudFormation YAML template and returns every problem it
// finds, sorted by path. The error is non-nil only when the text is not YAML.
func Check(template []byte, spec *Spec) ([]Problem, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(template, &doc); err != nil {
		return nil, fmt.Errorf("template is not valid YAML: %w", err)
	}
	c := &checker{spec: spec, vocab: newVocabulary(), used: map[string]bool{}}
	root, err := c.decode(&doc, "")
	if err != nil {
		return nil, err
	}
	tmpl, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("template is not a YAML mapping")
	}
	c.template(tmpl)
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].Path < c.problems[j].Path })
	return c.problems, nil
}

// Decode parses a template into plain Go values, turning short-form tags into
// their long form ({"Ref": x}, {"Fn::GetAtt": [res, attr]}, ...), so tests can
// inspect what the template says.
func Decode(template []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(template, &doc); err != nil {
		return nil, fmt.Errorf("template is not valid YAML: %w", err)
	}
	c := &checker{vocab: newVocabulary()}
	v, err := c.decode(&doc, "")
	if err != nil {
		return nil, err
	}
	if len(c.problems) > 0 {
		return nil, fmt.Errorf("%s", c.problems[0])
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("template is not a YAML mapping")
	}
	return m, nil
}

type checker struct {
	spec       *Spec
	vocab      vocabulary
	problems   []Problem
	resources  map[string]string // logical id -> type
	parameters map[string]bool
	conditions map[string]bool
	mappings   map[string]bool
	used       map[string]bool // parameters referenced anywhere
}

func (c *checker) addf(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// decode converts a YAML node into maps, slices and scalars.
func (c *checker) decode(n *yaml.Node, path string) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, errors.New("template is empty")
		}
		return c.decode(n.Content[0], path)
	case yaml.AliasNode:
		return c.decode(n.Alias, path)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		fn, ok := c.vocab.shortForms[n.Tag]
		if !ok {
			c.addf(path, "unknown tag %s (line %d): use one of CloudFormation's short forms such as !Ref, !Sub, !GetAtt", n.Tag, n.Line)
			return nil, nil
		}
		plain := *n
		plain.Tag = ""
		if n.Kind == yaml.ScalarNode {
			plain.Tag = "!!str"
		}
		arg, err := c.decode(&plain, path)
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
			k := n.Content[i].Value
			if _, dup := m[k]; dup {
				c.addf(join(path, k), "duplicate key (line %d)", n.Content[i].Line)
			}
			v, err := c.decode(n.Content[i+1], join(path, k))
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			v, err := c.decode(item, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	default:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, n.Line, err)
		}
		return v, nil
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (c *checker) template(t map[string]any) {
	for _, k := range sortedKeys(t) {
		if !c.vocab.topLevelKeys[k] {
			c.addf(k, "unknown top-level section%s", suggest(k, c.vocab.topLevelKeys))
		}
	}
	params := asMap(t["Parameters"])
	resources := asMap(t["Resources"])
	c.parameters = map[string]bool{}
	for name := range params {
		c.parameters[name] = true
	}
	c.conditions = map[string]bool{}
	for name := range asMap(t["Conditions"]) {
		c.conditions[name] = true
	}
	c.mappings = map[string]bool{}
	for name := range asMap(t["Mappings"]) {
		c.mappings[name] = true
	}
	c.resources = map[string]string{}
	for name, r := range resources {
		typ, _ := asMap(r)["Type"].(string)
		c.resources[name] = typ
		if c.parameters[name] {
			c.addf("Resources."+name, "logical id is also a parameter name")
		}
	}
	if len(resources) == 0 {
		c.addf("Resources", "the template has no resources")
	}

	for _, name := range sortedKeys(params) {
		c.parameter("Parameters."+name, params[name])
	}
	for _, name := range sortedKeys(asMap(t["Conditions"])) {
		c.refs(asMap(t["Conditions"])[name], "Conditions."+name)
	}
	if rules, ok := t["Rules"]; ok {
		c.refs(rules, "Rules")
	}
	for _, name := range sortedKeys(resources) {
		c.resource("Resources."+name, name, resources[name])
	}
	outputs := asMap(t["Outputs"])
	for _, name := range sortedKeys(outputs) {
		c.output("Outputs."+name, outputs[name])
	}
	c.interfaceMetadata(asMap(t["Metadata"]))
	for _, name := range sortedKeys(params) {
		if !c.used[name] {
			c.addf("Parameters."+name, "parameter is never used: remove it or reference it")
		}
	}
}

func (c *checker) parameter(path string, v any) {
	p, ok := v.(map[string]any)
	if !ok {
		c.addf(path, "a parameter must be a mapping with Type and Description")
		return
	}
	for _, k := range sortedKeys(p) {
		if !c.vocab.parameterKeys[k] {
			c.addf(join(path, k), "unknown parameter attribute%s", suggest(k, c.vocab.parameterKeys))
		}
	}
	typ, _ := p["Type"].(string)
	switch {
	case typ == "":
		c.addf(path, "parameter has no Type")
	case c.vocab.plainParamTypes[typ], strings.HasPrefix(typ, "AWS::"), strings.HasPrefix(typ, "List<AWS::"):
	default:
		c.addf(join(path, "Type"), "unknown parameter type %q%s", typ, suggest(typ, c.vocab.plainParamTypes))
	}
	if d, _ := p["Description"].(string); strings.TrimSpace(d) == "" {
		c.addf(path, "parameter has no Description: say what it is for and what the default means")
	}
	if allowed, ok := p["AllowedValues"].([]any); ok {
		if def, has := p["Default"]; has && !containsValue(allowed, def) {
			c.addf(join(path, "Default"), "default %v is not among AllowedValues", def)
		}
	}
}

func containsValue(list []any, v any) bool {
	for _, item := range list {
		if fmt.Sprint(item) == fmt.Sprint(v) {
			return true
		}
	}
	return false
}

func (c *checker) resource(path, name string, v any) {
	r, ok := v.(map[string]any)
	if !ok {
		c.addf(path, "a resource must be a mapping with Type and Properties")
		return
	}
	for _, k := range sortedKeys(r) {
		if !c.vocab.resourceKeys[k] {
			c.addf(join(path, k), "unknown resource attribute%s", suggest(k, c.vocab.resourceKeys))
		}
	}
	if cond, ok := r["Condition"]; ok {
		c.conditionName(join(path, "Condition"), cond)
	}
	for _, k := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
		if p, ok := r[k]; ok {
			if s, _ := p.(string); !c.vocab.deletionPolicies[s] {
				c.addf(join(path, k), "%v is not a deletion policy (Delete, Retain, RetainExceptOnCreate, Snapshot)", p)
			}
		}
	}
	c.dependsOn(join(path, "DependsOn"), name, r["DependsOn"])
	c.refs(r["Properties"], join(path, "Properties"))
	c.refs(r["Metadata"], join(path, "Metadata"))

	typ, _ := r["Type"].(string)
	if typ == "" {
		c.addf(path, "resource has no Type")
		return
	}
	ts, known := c.spec.Types[typ]
	if !known {
		c.addf(join(path, "Type"), "unknown resource type %q%s (known: testdata/resource-spec.json)", typ, suggest(typ, keysOf(c.spec.Types)))
		return
	}
	props, hasProps := r["Properties"]
	if !hasProps {
		props = map[string]any{}
	}
	for _, alt := range alternatives(props) {
		m, ok := alt.(map[string]any)
		if !ok {
			if !isIntrinsic(alt) {
				c.addf(join(path, "Properties"), "Properties must be a mapping")
			}
			continue
		}
		c.properties(join(path, "Properties"), typ, m, ts.Properties, ts.Required)
		if len(ts.RequiredOneOf) > 0 && !anyGroupPresent(m, ts.RequiredOneOf) {
			c.addf(join(path, "Properties"), "%s needs one of %s", typ, describeGroups(ts.RequiredOneOf))
		}
	}
}

func anyGroupPresent(m map[string]any, groups [][]string) bool {
	for _, g := range groups {
		all := true
		for _, k := range g {
			if _, ok := m[k]; !ok {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

func describeGroups(groups [][]string) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = strings.Join(g, "+")
	}
	return strings.Join(parts, " or ")
}

// properties checks the keys of one object against its spec, descending into
// nested objects the spec describes.
func (c *checker) properties(path, typ string, m map[string]any, spec map[string]PropSpec, required []string) {
	for _, k := range required {
		if _, ok := m[k]; !ok {
			c.addf(path, "missing required property %s of %s", k, typ)
		}
	}
	for _, k := range sortedKeys(m) {
		ps, ok := spec[k]
		if !ok {
			c.addf(join(path, k), "unknown property %q of %s%s", k, typ, suggest(k, keysOf(spec)))
			continue
		}
		if ps.Properties == nil {
			continue
		}
		for _, alt := range alternatives(m[k]) {
			if ps.List {
				list, ok := alt.([]any)
				if !ok {
					if !isIntrinsic(alt) {
						c.addf(join(path, k), "%s must be a list", k)
					}
					continue
				}
				for i, item := range list {
					for _, itemAlt := range alternatives(item) {
						if obj, ok := itemAlt.(map[string]any); ok && !isIntrinsic(obj) {
							c.properties(fmt.Sprintf("%s[%d]", join(path, k), i), typ, obj, ps.Properties, ps.Required)
						}
					}
				}
				continue
			}
			if obj, ok := alt.(map[string]any); ok && !isIntrinsic(obj) {
				c.properties(join(path, k), typ, obj, ps.Properties, ps.Required)
			}
		}
	}
}

// alternatives expands Fn::If into the values it may produce, dropping AWS::NoValue.
func alternatives(v any) []any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return []any{v}
	}
	if ref, ok := m["Ref"]; ok && ref == "AWS::NoValue" {
		return nil
	}
	args, ok := m["Fn::If"].([]any)
	if !ok || len(args) != 3 {
		return []any{v}
	}
	return append(alternatives(args[1]), alternatives(args[2])...)
}

func isIntrinsic(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

func (c *checker) dependsOn(path, self string, v any) {
	if v == nil {
		return
	}
	var names []any
	switch d := v.(type) {
	case string:
		names = []any{d}
	case []any:
		names = d
	default:
		c.addf(path, "DependsOn must be a logical id or a list of them")
		return
	}
	for _, n := range names {
		s, _ := n.(string)
		switch {
		case s == self:
			c.addf(path, "a resource cannot depend on itself")
		case !c.hasResource(s):
			c.addf(path, "DependsOn %v: no such resource%s", n, suggest(s, c.resourceNames()))
		}
	}
}

func (c *checker) hasResource(name string) bool { _, ok := c.resources[name]; return ok }

func (c *checker) resourceNames() map[string]bool {
	m := make(map[string]bool, len(c.resources))
	for k := range c.resources {
		m[k] = true
	}
	return m
}

func (c *checker) conditionName(path string, v any) {
	s, _ := v.(string)
	if !c.conditions[s] {
		c.addf(path, "condition %v is not defined in Conditions%s", v, suggest(s, c.conditions))
	}
}

func (c *checker) output(path string, v any) {
	o, ok := v.(map[string]any)
	if !ok {
		c.addf(path, "an output must be a mapping with Value and Description")
		return
	}
	for _, k := range sortedKeys(o) {
		if !c.vocab.outputKeys[k] {
			c.addf(join(path, k), "unknown output attribute%s", suggest(k, c.vocab.outputKeys))
		}
	}
	if _, ok := o["Value"]; !ok {
		c.addf(path, "output has no Value")
	}
	if d, _ := o["Description"].(string); strings.TrimSpace(d) == "" {
		c.addf(path, "output has no Description: say which setting it feeds")
	}
	if cond, ok := o["Condition"]; ok {
		c.conditionName(join(path, "Condition"), cond)
	}
	c.refs(o["Value"], join(path, "Value"))
	c.refs(o["Export"], join(path, "Export"))
}

// interfaceMetadata checks that parameter groups name real parameters.
func (c *checker) interfaceMetadata(meta map[string]any) {
	iface := asMap(meta["AWS::CloudFormation::Interface"])
	groups, _ := iface["ParameterGroups"].([]any)
	for i, g := range groups {
		params, _ := asMap(g)["Parameters"].([]any)
		for _, p := range params {
			if s, _ := p.(string); !c.parameters[s] {
				c.addf(fmt.Sprintf("Metadata.AWS::CloudFormation::Interface.ParameterGroups[%d]", i), "no parameter %v%s", p, suggest(s, c.parameters))
			}
		}
	}
}

// refs walks a value and checks every reference in it.
func (c *checker) refs(v any, path string) {
	switch x := v.(type) {
	case []any:
		for i, item := range x {
			c.refs(item, fmt.Sprintf("%s[%d]", path, i))
		}
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if c.intrinsic(join(path, k), k, arg) {
					return
				}
			}
		}
		for _, k := range sortedKeys(x) {
			c.refs(x[k], join(path, k))
		}
	}
}

// intrinsic checks one function call; it reports false when k is no function.
func (c *checker) intrinsic(path, k string, arg any) bool {
	switch {
	case k == "Ref":
		s, ok := arg.(string)
		if !ok {
			c.addf(path, "Ref takes a logical id or parameter name")
			return true
		}
		c.refName(path, s)
		return true
	case k == "Condition":
		s, ok := arg.(string)
		if !ok { // e.g. an IAM policy Condition block
			return false
		}
		c.conditionName(path, s)
		return true
	case !strings.HasPrefix(k, "Fn::"):
		return false
	case !c.vocab.functions[k]:
		c.addf(path, "unknown intrinsic function %s%s", k, suggest(k, c.vocab.functions))
		return true
	}
	args, _ := arg.([]any)
	switch k {
	case "Fn::GetAtt":
		c.getAtt(path, arg)
		return true
	case "Fn::Sub":
		c.sub(path, arg)
		return true
	case "Fn::If":
		if len(args) != 3 {
			c.addf(path, "Fn::If takes [condition, value if true, value if false]")
			return true
		}
		c.conditionName(path, args[0])
		c.refs(args[1], path+"[1]")
		c.refs(args[2], path+"[2]")
		return true
	case "Fn::FindInMap":
		if len(args) != 3 {
			c.addf(path, "Fn::FindInMap takes [map, top-level key, second-level key]")
			return true
		}
		if s, ok := args[0].(string); ok && !c.mappings[s] {
			c.addf(path, "no mapping %q in Mappings", s)
		}
	}
	c.refs(arg, path)
	return true
}

func (c *checker) refName(path, name string) {
	switch {
	case c.vocab.pseudoParameters[name]:
	case c.parameters[name]:
		c.used[name] = true
	case c.hasResource(name):
	default:
		known := c.resourceNames()
		for p := range c.parameters {
			known[p] = true
		}
		c.addf(path, "Ref %s: no such resource, parameter or pseudo parameter%s", name, suggest(name, known))
	}
}

func (c *checker) getAtt(path string, arg any) {
	args, _ := arg.([]any)
	if len(args) != 2 {
		c.addf(path, "Fn::GetAtt takes [resource, attribute] or \"Resource.Attribute\"")
		return
	}
	res, _ := args[0].(string)
	attr, ok := args[1].(string)
	if !ok {
		c.refs(args[1], path+"[1]")
		return
	}
	c.attribute(path, res, attr)
}

func (c *checker) attribute(path, res, attr string) {
	typ, ok := c.resources[res]
	if !ok {
		c.addf(path, "GetAtt %s.%s: no such resource%s", res, attr, suggest(res, c.resourceNames()))
		return
	}
	ts, known := c.spec.Types[typ]
	if !known {
		return // the unknown type is reported on the resource
	}
	head, _, _ := strings.Cut(attr, ".")
	for _, a := range ts.Attributes {
		if a == attr || a == head {
			return
		}
	}
	c.addf(path, "GetAtt %s.%s: %s has no attribute %s (it has %s)", res, attr, typ, attr, strings.Join(ts.Attributes, ", "))
}

// sub checks the ${...} placeholders of Fn::Sub.
func (c *checker) sub(path string, arg any) {
	var text string
	vars := map[string]bool{}
	switch a := arg.(type) {
	case string:
		text = a
	case []any:
		if len(a) != 2 {
			c.addf(path, "Fn::Sub takes a string or [string, {variables}]")
			return
		}
		text, _ = a[0].(string)
		m := asMap(a[1])
		for _, k := range sortedKeys(m) {
			vars[k] = true
			c.refs(m[k], join(path, k))
		}
	default:
		c.addf(path, "Fn::Sub takes a string or [string, {variables}]")
		return
	}
	for rest := text; ; {
		i := strings.Index(rest, "${")
		if i < 0 {
			return
		}
		rest = rest[i+2:]
		if strings.HasPrefix(rest, "!") { // ${!Literal}
			continue
		}
		j := strings.Index(rest, "}")
		if j < 0 {
			c.addf(path, "Fn::Sub: unclosed ${ in %q", text)
			return
		}
		name := strings.TrimSpace(rest[:j])
		rest = rest[j+1:]
		switch {
		case vars[name]:
		case c.vocab.pseudoParameters[name], c.parameters[name], c.hasResource(name):
			c.refName(path, name)
		case strings.Contains(name, "."):
			res, attr, _ := strings.Cut(name, ".")
			c.attribute(path, res, attr)
		default:
			c.refName(path, name)
		}
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func keysOf[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// suggest names the closest known word, for messages like
// `unknown property "BucketEncription" (did you mean BucketEncryption?)`.
func suggest(word string, known map[string]bool) string {
	if best := textdist.Closest(word, sortedKeys(known), 4); best != "" {
		return " (did you mean " + best + "?)"
	}
	return ""
}
