package deploy

import (
	"bufio"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// userDataParts splits the launch template's MIME multi-part user data into
// its parts by content type, as cloud-init does.
func userDataParts(t *testing.T) map[string]string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(userData(t, decodeTemplate(t))))
	if err != nil {
		t.Fatalf("user data is not a MIME message: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("user data is %q (%v), want multipart/mixed: Batch rejects anything else", mt, err)
	}
	parts := map[string]string{}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts[ct] = string(b)
	}
	return parts
}

// unit is a parsed systemd unit file: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(text string) unit {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, _ := strings.Cut(line, "=")
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) words(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// blocksMetadata reports whether an iptables command line rejects the
// instance metadata address for every user but root in OUTPUT.
func blocksMetadata(f []string) bool {
	if len(f) == 0 || !strings.HasSuffix(f[0], "iptables") {
		return false
	}
	has := func(seq ...string) bool {
		for i := range f {
			if i+len(seq) <= len(f) && slices.Equal(f[i:i+len(seq)], seq) {
				return true
			}
		}
		return false
	}
	rejects := has("--jump", "REJECT") || has("--jump", "DROP") || has("-j", "REJECT") || has("-j", "DROP")
	chain := has("--insert", "OUTPUT") || has("-I", "OUTPUT") || has("--append", "OUTPUT") || has("-A", "OUTPUT")
	dest := has("--destination", "169.254.169.254/32") || has("--destination", "169.254.169.254") || has("-d", "169.254.169.254/32") || has("-d", "169.254.169.254")
	return rejects && chain && dest && has("!", "--uid-owner", "0")
}

// Batch jobs on EC2 share the host's network, where the IMDS hop limit does
// not apply: a systemd unit rejects the metadata address for every user but
// root (jobs run as the image's user), so a job cannot take the instance
// role. The test plays the instance's boots: cloud-init writes the files
// and runs the script once (first boot); on every later boot only enabled
// units run. The block must be in force on the second boot, and the ECS
// agent (which starts jobs) must not run without it.
func TestMetadataBlockHoldsOnEveryBoot(t *testing.T) {
	tmpl := decodeTemplate(t)
	md := props(t, tmpl, "LaunchTemplate")["LaunchTemplateData"].(map[string]any)["MetadataOptions"].(map[string]any)
	if md["HttpTokens"] != "required" || !equal(md["HttpPutResponseHopLimit"], 1) {
		t.Errorf("metadata options %v: want IMDSv2 only (HttpTokens required) and hop limit 1", md)
	}
	if md["HttpProtocolIpv6"] != "disabled" {
		t.Errorf("HttpProtocolIpv6 = %v, want disabled (the block covers the IPv4 address only)", md["HttpProtocolIpv6"])
	}

	parts := userDataParts(t)
	cc, ok := parts["text/cloud-config"]
	if !ok || !strings.HasPrefix(cc, "#cloud-config\n") {
		t.Fatalf("user data has no cloud-config part (parts: %v)", slices.Collect(mapsKeys(parts)))
	}
	var config struct {
		WriteFiles []struct {
			Path, Content string
		} `yaml:"write_files"`
	}
	if err := yaml.Unmarshal([]byte(cc), &config); err != nil {
		t.Fatalf("cloud-config: %v", err)
	}
	files := map[string]unit{} // the root volume after the first boot
	for _, f := range config.WriteFiles {
		files[f.Path] = parseUnit(f.Content)
	}
	script := parts["text/x-shellscript"]
	if !strings.HasPrefix(script, "#!/bin/bash\nset -euo pipefail\n") {
		t.Errorf("the script part does not stop at its first failure:\n%s", script)
	}

	// First boot: the script enables units ("systemctl enable [--now] NAME").
	enabled := map[string]bool{}
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "systemctl" && f[1] == "enable" {
			enabled[f[len(f)-1]] = true
		}
		if blocksMetadata(f) {
			t.Errorf("the script adds the block itself, which a reboot loses: %s", line)
		}
	}

	// Later boots: systemd starts what the enabled units' [Install] sections name.
	const dir = "/etc/systemd/system/"
	var blockUnits []string
	for path, u := range files {
		name, ok := strings.CutPrefix(path, dir)
		if !ok || strings.Contains(name, "/") || !strings.HasSuffix(name, ".service") {
			continue
		}
		var starts []string
		for _, k := range []string{"ExecStart"} {
			for _, v := range u["Service"][k] {
				if strings.HasPrefix(v, "-") {
					t.Errorf("%s ignores a failure of %q: the block would fail open", name, v)
				}
				starts = append(starts, v)
			}
		}
		if !slices.ContainsFunc(starts, func(v string) bool { return blocksMetadata(strings.Fields(v)) }) {
			continue
		}
		blockUnits = append(blockUnits, name)
		if !enabled[name] {
			t.Errorf("%s is never enabled: it would not run on the second boot", name)
		}
		if !slices.Contains(u.words("Install", "WantedBy"), "multi-user.target") {
			t.Errorf("%s is not wanted by multi-user.target: enabling it does not start it at boot", name)
		}
		if u["Service"]["Type"] == nil || u["Service"]["Type"][0] != "oneshot" || u["Service"]["RemainAfterExit"] == nil {
			t.Errorf("%s: want Type=oneshot with RemainAfterExit=yes, so units that require it see it active", name)
		}
		// Fails closed: the ECS agent requires the unit (a drop-in, or the unit's RequiredBy once enabled)
		// and starts after it.
		drop := files[dir+"ecs.service.d/10-framefleet-imds-block.conf"]
		requires := slices.Contains(drop.words("Unit", "Requires"), name) || slices.Contains(u.words("Install", "RequiredBy"), "ecs.service")
		after := slices.Contains(drop.words("Unit", "After"), name) || slices.Contains(u.words("Unit", "Before"), "ecs.service")
		if !requires || !after {
			t.Errorf("ecs.service does not require %s and start after it (requires %v, after %v): jobs could start unblocked", name, requires, after)
		}
	}
	if len(blockUnits) != 1 {
		t.Errorf("found %d units that reject 169.254.169.254 for every user but root, want 1: %v", len(blockUnits), blockUnits)
	}
	if strings.Contains(cc+script, "169.254.170.2") || strings.Contains(cc+script, "169.254.0.0/16") {
		t.Error("user data blocks the ECS agent's credentials endpoint, which jobs need for the job role")
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
