package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/framefleet/framefleet/pipeline/config"
)

// configFlags are the flags every command that reads framefleet.yaml shares:
// which file, and --set KEY=VALUE for any setting, so every setting can come
// from a flag without one flag per key (defaults < file < FRAMEFLEET_* < flags).
type configFlags struct {
	path string
	sets []string
}

func (c *configFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&c.path, "config", "", "configuration file (default: $FRAMEFLEET_CONFIG, else ./framefleet.yaml if present)")
	fl.StringArrayVar(&c.sets, "set", nil, "override one setting, e.g. --set batch.job_queue=renders --set region=eu-west-1 (keys as in framefleet.example.yaml; repeatable)")
}

// load reads the configuration and applies --set; it does not validate.
func (c *configFlags) load() (*config.Config, error) {
	cfg, err := config.Load(c.path, os.Getenv)
	if err != nil {
		return nil, err
	}
	for _, kv := range c.sets {
		key, value, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(key) == "" {
			return nil, fmt.Errorf("--set %q: give KEY=VALUE, e.g. --set batch.job_queue=renders", kv)
		}
		if err := cfg.Set(strings.TrimSpace(key), value); err != nil {
			return nil, fmt.Errorf("--set %s: %w", kv, err)
		}
	}
	return cfg, nil
}
