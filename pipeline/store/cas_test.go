package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/framefleet/framefleet/pipeline/store"
)

// increment adds one to the decimal counter under key with a read, modify,
// conditional write loop, as a run record update does.
func increment(ctx context.Context, st store.Store, key string) error {
	for {
		data, v, err := st.GetVersioned(ctx, key)
		n := 0
		switch {
		case errors.Is(err, store.ErrNotFound):
			v = ""
		case err != nil:
			return err
		default:
			if n, err = strconv.Atoi(string(data)); err != nil {
				return fmt.Errorf("counter holds %q: %w", data, err)
			}
		}
		_, err = st.PutIfVersion(ctx, key, []byte(strconv.Itoa(n+1)), v)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

func readCounter(t *testing.T, st store.Store, key string) int {
	t.Helper()
	data, _, err := st.GetVersioned(context.Background(), key)
	if err != nil {
		t.Fatalf("read counter: %v", err)
	}
	n, err := strconv.Atoi(string(data))
	if err != nil {
		t.Fatalf("counter holds %q", data)
	}
	return n
}

var conditional = []struct {
	name string
	run  func(t *testing.T, st store.Store)
}{
	{"create if absent race has one winner", func(t *testing.T, st store.Store) {
		ctx := context.Background()
		const writers = 12
		var wg sync.WaitGroup
		errs := make([]error, writers)
		versions := make([]store.Version, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				versions[i], errs[i] = st.PutIfVersion(ctx, "runs/r1/run.json", []byte(fmt.Sprintf(`{"writer":%d}`, i)), "")
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("writers %d and %d both created the key", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("writer %d: %v, want ErrConflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no writer created the key")
		}
		data, v, err := st.GetVersioned(ctx, "runs/r1/run.json")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"writer":%d}`, winner); string(data) != want || v != versions[winner] {
			t.Errorf("stored %s version %s, want the winner's %s version %s", data, v, want, versions[winner])
		}
	}},
	{"stale version conflicts", func(t *testing.T, st store.Store) {
		ctx := context.Background()
		key := "runs/r2/run.json"
		v1, err := st.PutIfVersion(ctx, key, []byte("one"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutIfVersion(ctx, key, []byte("again"), ""); !errors.Is(err, store.ErrConflict) {
			t.Errorf("create over an existing key: %v, want ErrConflict", err)
		}
		v2, err := st.PutIfVersion(ctx, key, []byte("two"), v1)
		if err != nil {
			t.Fatalf("replace at the current version: %v", err)
		}
		if v2 == v1 {
			t.Errorf("new content kept version %s", v1)
		}
		if _, err := st.PutIfVersion(ctx, key, []byte("lost"), v1); !errors.Is(err, store.ErrConflict) {
			t.Errorf("replace at a stale version: %v, want ErrConflict", err)
		}
		data, v, err := st.GetVersioned(ctx, key)
		if err != nil || string(data) != "two" || v != v2 {
			t.Errorf("GetVersioned = %q %s %v, want two %s", data, v, err, v2)
		}
		// A plain Put changes the version too, so it cannot be overwritten blindly.
		mustPut(t, st, key, []byte("three"))
		if _, err := st.PutIfVersion(ctx, key, []byte("lost"), v2); !errors.Is(err, store.ErrConflict) {
			t.Errorf("replace after a plain Put: %v, want ErrConflict", err)
		}
		if err := st.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutIfVersion(ctx, key, []byte("lost"), v2); !errors.Is(err, store.ErrConflict) {
			t.Errorf("replace of a deleted key: %v, want ErrConflict", err)
		}
		if _, _, err := st.GetVersioned(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetVersioned after Delete: %v, want ErrNotFound", err)
		}
	}},
	{"concurrent increments are never lost", func(t *testing.T, st store.Store) {
		ctx := context.Background()
		const writers, each = 6, 15
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if err := increment(ctx, st, "runs/r3/counter"); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if got := readCounter(t, st, "runs/r3/counter"); got != writers*each {
			t.Errorf("counter = %d after %d increments", got, writers*each)
		}
	}},
	{"list page walks the prefix in order", func(t *testing.T, st store.Store) {
		ctx := context.Background()
		var want []string
		for i := range 23 {
			k := fmt.Sprintf("runs/r%02d/run.json", i)
			want = append(want, k)
			mustPut(t, st, k, []byte("x"))
		}
		mustPut(t, st, "cache/outside.json", []byte("x"))
		mustPut(t, st, "runsx/outside.json", []byte("x"))
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatal("more than 3 pages of 10 for 23 keys")
			}
			page, more, err := st.ListPage(ctx, "runs/", after, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 10 || (more && len(page) != 10) {
				t.Fatalf("page of %d objects with more=%v", len(page), more)
			}
			for _, o := range page {
				got = append(got, o.Key)
			}
			if !more {
				break
			}
			after = page[len(page)-1].Key
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("pages gave %q, want %q", got, want)
		}
		page, more, err := st.ListPage(ctx, "runs/", "runs/r20/", 0)
		if err != nil || more || len(page) != 3 || page[0].Key != "runs/r20/run.json" {
			t.Errorf("ListPage after runs/r20/ = %v more=%v err=%v, want r20..r22", page, more, err)
		}
		if page, more, err := st.ListPage(ctx, "none/", "", 5); err != nil || more || len(page) != 0 {
			t.Errorf("ListPage of an empty prefix = %v %v %v", page, more, err)
		}
		if _, _, err := st.ListPage(ctx, "../", "", 5); err == nil {
			t.Error("ListPage ../: no error")
		}
	}},
	{"delete", func(t *testing.T, st store.Store) {
		ctx := context.Background()
		mustPut(t, st, "runs/r4/a", []byte("a"))
		mustPut(t, st, "runs/r4/b", []byte("b"))
		if err := st.Delete(ctx, "runs/r4/a"); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "runs/r4/a"); err != nil {
			t.Errorf("deleting an absent key: %v", err)
		}
		if _, err := st.Stat(ctx, "runs/r4/a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Stat after Delete: %v", err)
		}
		objs, err := st.List(ctx, "runs/r4/")
		if err != nil || len(objs) != 1 || objs[0].Key != "runs/r4/b" {
			t.Errorf("List after Delete = %v %v, want runs/r4/b", objs, err)
		}
		if err := st.Delete(ctx, "../x"); err == nil {
			t.Error("Delete ../x: no error")
		}
	}},
}

func TestConditionalWrites(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			for _, tc := range conditional {
				t.Run(tc.name, func(t *testing.T) {
					st, _ := kind.open(t)
					tc.run(t, st)
				})
			}
		})
	}
}

// casChildEnv names the store directory a child process of
// TestFileConditionalWritesAcrossProcesses increments its counter in.
const casChildEnv = "FRAMEFLEET_TEST_CAS_CHILD_DIR"

// TestFileConditionalWritesAcrossProcesses runs this test binary twice more
// as child processes; each increments one counter 50 times through its own
// File store on the same directory. A lock that held only within a process
// would lose updates.
func TestFileConditionalWritesAcrossProcesses(t *testing.T) {
	const key, each = "runs/shared/counter", 50
	if dir := os.Getenv(casChildEnv); dir != "" {
		st, err := store.NewFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		for range each {
			if err := increment(context.Background(), st, key); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	dir := t.TempDir()
	var children []*exec.Cmd
	var outputs []*bytes.Buffer
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileConditionalWritesAcrossProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), casChildEnv+"="+dir)
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, cmd)
		outputs = append(outputs, out)
	}
	for i, cmd := range children {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outputs[i])
		}
	}
	st, err := store.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := readCounter(t, st, key); got != 2*each {
		t.Errorf("counter = %d after 2 processes incremented it %d times each", got, each)
	}
}

func TestFileLocksStayOutOfTheKeySpace(t *testing.T) {
	dir := t.TempDir()
	st, err := store.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.PutIfVersion(ctx, "runs/r1/run.json", []byte("{}"), ""); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, ".framefleet-locks"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("no lock files under .framefleet-locks: %v", err)
	}
	all, err := st.List(ctx, "")
	if err != nil || len(all) != 1 || all[0].Key != "runs/r1/run.json" {
		t.Errorf("List \"\" = %v %v, want only runs/r1/run.json", all, err)
	}
	if _, err := st.PutIfVersion(ctx, ".framefleet-locks/00.lock", []byte("x"), ""); err == nil {
		t.Error("writing into the lock directory: no error")
	}
}
