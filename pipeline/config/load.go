package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/framefleet/framefleet/internal/textdist"
	"github.com/framefleet/framefleet/pipeline"

	"gopkg.in/yaml.v3"
)

// Key describes one setting: its YAML path, the environment variables that
// set it (the first non-empty one wins) and a line of help.
type Key struct {
	Name string
	Env  []string
	Help string
}

// Keys lists every setting, in file order. Front-ends use it for help texts
// and to map flags to keys.
func Keys() []Key {
	return append([]Key{
		{"engine", []string{"FRAMEFLEET_ENGINE"}, "where jobs run: local or batch"},
		{"store", []string{"FRAMEFLEET_STORE"}, "store URI: a directory, file:///dir or s3://bucket/prefix"},
		{"bucket", []string{"FRAMEFLEET_BUCKET"}, "S3 bucket (instead of store)"},
		{"prefix", []string{"FRAMEFLEET_PREFIX"}, "key prefix inside bucket"},
		{"region", []string{"FRAMEFLEET_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"}, "AWS region"},
		{"s3.endpoint", []string{"FRAMEFLEET_S3_ENDPOINT"}, "URL of an S3-compatible server, with scheme"},
		{"s3.path_style", []string{"FRAMEFLEET_S3_PATH_STYLE"}, "path-style bucket addressing (S3-compatible servers)"},
		{"s3.max_attempts", []string{"FRAMEFLEET_S3_MAX_ATTEMPTS"}, "tries of one S3 call before it fails (0: 8)"},
		{"s3.unsafe_no_conditional_writes", []string{"FRAMEFLEET_S3_UNSAFE_NO_CONDITIONAL_WRITES"}, "accept a server that ignores conditional writes (runs are then not deduplicated)"},
		{"batch.job_queue", []string{"FRAMEFLEET_JOB_QUEUE"}, "AWS Batch job queue name or ARN"},
		{"batch.job_definition", []string{"FRAMEFLEET_JOB_DEFINITION"}, "job definition name (registered when image is set)"},
		{"batch.image", []string{"FRAMEFLEET_IMAGE"}, "worker container image"},
		{"batch.vcpus", []string{"FRAMEFLEET_VCPUS"}, "vCPUs per job"},
		{"batch.memory_mib", []string{"FRAMEFLEET_MEMORY_MIB"}, "memory per job in MiB"},
		{"batch.platform", []string{"FRAMEFLEET_PLATFORM"}, "EC2 or FARGATE"},
		{"batch.gpus", []string{"FRAMEFLEET_GPUS"}, "GPUs per job (EC2 only)"},
		{"batch.attempts", []string{"FRAMEFLEET_ATTEMPTS"}, fmt.Sprintf("attempts per job, 1 to %d", pipeline.MaxAttempts)},
		{"batch.attempt_timeout", []string{"FRAMEFLEET_ATTEMPT_TIMEOUT"}, "time limit per attempt (0: none, else at least 1m)"},
		{"batch.execution_role_arn", []string{"FRAMEFLEET_EXECUTION_ROLE_ARN"}, "execution role (Fargate: image pull, logs)"},
		{"batch.job_role_arn", []string{"FRAMEFLEET_JOB_ROLE_ARN"}, "role the containers use (S3 access)"},
		{"batch.log_group", []string{"FRAMEFLEET_LOG_GROUP"}, "CloudWatch Logs group of the workers (empty: /aws/batch/job)"},
		{"batch.blender_version", []string{"FRAMEFLEET_BLENDER_VERSION"}, "Blender version the image carries, e.g. 3.4.1"},
		{"render.chunk", []string{"FRAMEFLEET_CHUNK"}, "frames per job (0: automatic)"},
		{"render.workers", []string{"FRAMEFLEET_WORKERS"}, "jobs at once (0: automatic)"},
		{"render.resolution", []string{"FRAMEFLEET_RESOLUTION"}, "resolution percentage (0: the scene's)"},
		{"render.samples", []string{"FRAMEFLEET_SAMPLES"}, "Cycles samples (0: the scene's)"},
		{"render.stitch", []string{"FRAMEFLEET_STITCH"}, "concat or encode"},
		{"scope", []string{"FRAMEFLEET_SCOPE"}, "trust scope of the runs: trusted, preview, bot or bot-<name>"},
		{"limits.max_frames", []string{"FRAMEFLEET_MAX_FRAMES"}, "most frames one request may render (0: the scope's default)"},
		{"limits.max_chunks", []string{"FRAMEFLEET_MAX_CHUNKS"}, "most chunks one request may use (0: the scope's default)"},
		{"render.allow_missing", []string{"FRAMEFLEET_ALLOW_MISSING"}, "render scenes whose textures or libraries are missing (they are listed in the run)"},
		{"price_per_vcpu_hour", []string{"FRAMEFLEET_PRICE_PER_VCPU_HOUR"}, "USD per vCPU hour, for the cost report"},
		{"link_expiry", []string{"FRAMEFLEET_LINK_EXPIRY"}, "lifetime of result links (at most 7d; 366d with CloudFront)"},
		{"links.cloudfront_domain", []string{"FRAMEFLEET_CLOUDFRONT_DOMAIN"}, "CloudFront distribution domain: signed links that outlive the credentials"},
		{"links.cloudfront_key_pair_id", []string{"FRAMEFLEET_CLOUDFRONT_KEY_PAIR_ID"}, "id of the CloudFront public key"},
		{"links.cloudfront_private_key", []string{"FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY"}, "RSA private key (PEM) for CloudFront links; use the environment"},
		{"links.cloudfront_private_key_file", []string{"FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY_FILE"}, "file holding that private key"},
	}, slackKeys()...)
}

// Load reads the configuration: Defaults, then the file, then the
// environment (env is os.Getenv in front-ends; nil means no environment).
// path "" means the file named by FRAMEFLEET_CONFIG, else ./framefleet.yaml
// when it exists, else no file. Load does not validate: apply flags with Set,
// then call Validate.
func Load(path string, env func(string) string) (*Config, error) {
	if env == nil {
		env = func(string) string { return "" }
	}
	cfg := Defaults()
	mustExist := true
	if path == "" {
		path = env(PathEnv)
	}
	if path == "" {
		path, mustExist = FileName, false
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := cfg.decode(path, data); err != nil {
			return nil, err
		}
		cfg.Source = path
	case errors.Is(err, fs.ErrNotExist) && !mustExist:
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("configuration file %s does not exist: fix the path, or leave it out to use ./%s", path, FileName)
	default:
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	if err := cfg.ApplyEnv(env); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse reads a configuration file's contents over Defaults, without the
// environment; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Defaults()
	if err := cfg.decode(name, data); err != nil {
		return nil, err
	}
	cfg.Source = name
	return cfg, nil
}

func (c *Config) decode(name string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, io.EOF) { // an empty file
		err = nil
	}
	if err != nil {
		return explainYAML(name, data, err)
	}
	c.normalize()
	return nil
}

// ApplyEnv sets every key whose environment variable is non-empty.
func (c *Config) ApplyEnv(env func(string) string) error {
	var errs []error
	for _, k := range Keys() {
		for _, name := range k.Env {
			v := strings.TrimSpace(env(name))
			if v == "" {
				continue
			}
			if err := c.Set(k.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
			}
			break
		}
	}
	return errors.Join(errs...)
}

// Set sets one key (e.g. "batch.memory_mib") from its text form, as a flag
// or environment variable gives it.
func (c *Config) Set(key, value string) error {
	f, err := c.field(key)
	if err != nil {
		return err
	}
	value = strings.TrimSpace(value)
	switch {
	case f.Type() == reflect.TypeOf(Duration(0)):
		d, err := ParseDuration(value)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(value)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		// Lists come from flags and variables comma-separated: "C01,C02".
		var items []string
		for _, item := range strings.Split(value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		f.Set(reflect.ValueOf(items))
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("%s: %q is not true or false", key, value)
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("%s: %q is not a whole number: give e.g. %s", key, value, example(key))
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not a number: give e.g. %s", key, value, example(key))
		}
		f.SetFloat(x)
	default:
		return fmt.Errorf("%s cannot be set from text", key)
	}
	c.normalize()
	return nil
}

func example(key string) string {
	switch key {
	case "batch.vcpus":
		return "2 or 0.5"
	case "batch.memory_mib":
		return "4096"
	case "price_per_vcpu_hour":
		return "0.0408"
	}
	return "4"
}

// field finds the struct field whose YAML path is key.
func (c *Config) field(key string) (reflect.Value, error) {
	v := reflect.ValueOf(c).Elem()
	parts := strings.Split(key, ".")
	for i, part := range parts {
		if v.Kind() != reflect.Struct {
			break
		}
		f, ok := fieldByTag(v, part)
		if !ok {
			break
		}
		v = f
		if i == len(parts)-1 && v.Kind() != reflect.Struct {
			return v, nil
		}
	}
	names := make([]string, 0, len(Keys()))
	for _, k := range Keys() {
		names = append(names, k.Name)
	}
	return reflect.Value{}, fmt.Errorf("unknown setting %q%s", key, suggest(key, names))
}

func fieldByTag(v reflect.Value, tag string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == tag && name != "-" {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// normalize accepts the obvious spellings of enumerations.
func (c *Config) normalize() {
	c.Engine = strings.ToLower(strings.TrimSpace(c.Engine))
	c.Batch.Platform = strings.ToUpper(strings.TrimSpace(c.Batch.Platform))
	c.Render.Stitch = strings.ToLower(strings.TrimSpace(c.Render.Stitch))
	c.Slack.Mode = strings.ToLower(strings.TrimSpace(c.Slack.Mode))
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (\S+) not found in type config\.(\w+)$`)
	wrongTypeRE    = regexp.MustCompile("^line (\\d+): cannot unmarshal !!\\w+ `(.*)` into (\\S+)$")
)

// fieldError is a value a custom unmarshaler rejected.
type fieldError struct {
	line int
	err  error
}

func (e *fieldError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }

// explainYAML turns yaml.v3's errors into ones that name the file, the line,
// the setting and the fix.
func explainYAML(name string, data []byte, err error) error {
	keys := keysByLine(data)
	at := func(line string) string {
		n, _ := strconv.Atoi(line)
		if k, ok := keys[n]; ok {
			return fmt.Sprintf("%s line %d: %s", name, n, k)
		}
		return fmt.Sprintf("%s line %d", name, n)
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("%s: %w", at(strconv.Itoa(fe.line)), fe.err)
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: not valid YAML: %v: check the indentation and quoting", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var errs []error
	for _, msg := range te.Errors {
		if m := wrongTypeRE.FindStringSubmatch(msg); m != nil {
			errs = append(errs, fmt.Errorf("%s: %q should be %s", at(m[1]), m[2], typeWords(m[3])))
			continue
		}
		m := unknownFieldRE.FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s: %s", name, msg))
			continue
		}
		section, known := sectionFields(m[3])
		where := "at the top level"
		if section != "" {
			where = "in section " + section
		}
		errs = append(errs, fmt.Errorf("%s line %s: unknown field %q %s%s (known: %s)",
			name, m[1], m[2], where, suggest(m[2], known), strings.Join(known, ", ")))
	}
	return errors.Join(errs...)
}

func typeWords(goType string) string {
	switch goType {
	case "int":
		return "a whole number, e.g. 4096"
	case "float64":
		return "a number, e.g. 2 or 0.5"
	case "bool":
		return "true or false"
	case "string":
		return "text"
	}
	return "a section of key: value lines"
}

// keysByLine maps each line holding a value to that value's key path.
func keysByLine(data []byte) map[int]string {
	out := map[int]string{}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return out
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if path != "" {
					k = path + "." + k
				}
				walk(n.Content[i+1], k)
			}
		default:
			if path != "" {
				out[n.Line] = path
			}
		}
	}
	walk(&doc, "")
	return out
}

// sectionFields returns the YAML section of a config type and its field names.
func sectionFields(typeName string) (string, []string) {
	var v any
	section := ""
	switch typeName {
	case "S3":
		v, section = S3{}, "s3"
	case "Batch":
		v, section = Batch{}, "batch"
	case "Render":
		v, section = Render{}, "render"
	case "Slack":
		v, section = Slack{}, "slack"
	default:
		v = Config{}
	}
	t := reflect.TypeOf(v)
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return section, names
}

// suggest returns ": did you mean X?" for the closest known name, if close.
func suggest(got string, known []string) string {
	if best := textdist.Closest(got, known, 3); best != "" {
		return fmt.Sprintf(": did you mean %q?", best)
	}
	return ""
}

// EnvNames lists every environment variable Load reads, sorted.
func EnvNames() []string {
	var out []string
	for _, k := range Keys() {
		out = append(out, k.Env...)
	}
	out = append(out, PathEnv)
	sort.Strings(out)
	return out
}
