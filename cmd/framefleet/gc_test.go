package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGCCommandListsFirstAndDeletesOnlyWhenAsked(t *testing.T) {
	t.Setenv("FRAMEFLEET_CONFIG", "")
	out := t.TempDir()
	orphan := filepath.Join(out, "runs", "abcd0001", "frames", "frame_000001.png")
	if err := os.MkdirAll(filepath.Dir(orphan), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte("png"), 0o644); err != nil {
		t.Fatal(err)
	}
	gc := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"gc", "--out", out, "--grace", "1ns"}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("gc %v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.String()
	}
	listed := gc()
	for _, want := range []string{
		"would remove runs/abcd0001/ (1 object, 3 B): orphaned run: no run record",
		"1 object (3 B) in file://" + out + " belong to no readable run: run again with --delete to remove them",
	} {
		if !strings.Contains(listed, want) {
			t.Errorf("gc output lacks %q:\n%s", want, listed)
		}
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Fatalf("gc without --delete removed %s: %v", orphan, err)
	}
	if deleted := gc("--delete"); !strings.Contains(deleted, "removed 1 of 1 objects") {
		t.Errorf("gc --delete said:\n%s", deleted)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("%s is still there after gc --delete: %v", orphan, err)
	}
	if again := gc(); !strings.Contains(again, "nothing to remove") {
		t.Errorf("gc after --delete:\n%s", again)
	}
}
