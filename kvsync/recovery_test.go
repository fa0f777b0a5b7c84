package kvsync

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type healthLog struct {
	mu     sync.Mutex
	events []string
}

func (h *healthLog) record(ok bool, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, fmt.Sprintf("%v %s", ok, reason))
}

func (h *healthLog) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

// corrupt damages a closed Badger directory in the given way.
func corrupt(t *testing.T, dir, how string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case how == "manifest" && e.Name() == "MANIFEST":
			n++
			if err := os.WriteFile(p, []byte("garbage garbage garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		case how == "sst" && strings.HasSuffix(e.Name(), ".sst"):
			n++
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(b)/2; i++ {
				b[i] ^= 0x5a
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		case how == "truncate" && (strings.HasSuffix(e.Name(), ".sst") || strings.HasSuffix(e.Name(), ".vlog") || e.Name() == "MANIFEST"):
			n++
			if err := os.Truncate(p, 7); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n == 0 {
		t.Fatalf("nothing to corrupt (%s) in %s", how, dir)
	}
}

func TestCorruptionRecovery(t *testing.T) {
	for _, how := range []string{"manifest", "sst", "truncate"} {
		t.Run(how, func(t *testing.T) {
			net := newMemNet()
			dir := t.TempDir()
			hl := &healthLog{}
			c := testConfig("n1")
			c.InMemory, c.Dir, c.OnHealth = false, dir, hl.record
			n1 := openT(t, c)
			n2 := openMem(t, "n2")
			net.add(n1)
			net.add(n2)
			for i := range 50 {
				if _, err := n1.SetFactoid(fmt.Sprintf("a%d", i), "v", "x"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := n1.CreateSnapshot(); err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				if _, err := n1.SetFactoid(fmt.Sprintf("b%d", i), "v", "x"); err != nil {
					t.Fatal(err)
				}
				if i%10 == 0 {
					if err := n1.ForgetFactoid(fmt.Sprintf("a%d", i), "x"); err != nil {
						t.Fatal(err)
					}
				}
			}
			waitConverged(t, n1, n2)
			want := n1.Digest()
			net.remove("n1")
			if err := n1.Close(); err != nil {
				t.Fatal(err)
			}
			corrupt(t, filepath.Join(dir, "db"), how)

			n1b := openT(t, c)
			ok, reason := n1b.Health()
			if ok || !strings.HasPrefix(reason, "db-error: ") {
				t.Fatalf("health after corrupt open = %v %q", ok, reason)
			}
			if st := n1b.Stats(); st.Entries != 100 || st.Recoveries != 1 {
				t.Fatalf("restored snapshot should hold 50 factoids + 50 log entries: %+v", st)
			}
			broken, _ := filepath.Glob(filepath.Join(dir, "db.broken-*"))
			if len(broken) != 1 {
				t.Fatalf("broken dirs: %v", broken)
			}
			net.add(n1b)
			n1b.Start()
			eventually(t, "healthy", func() bool { ok, _ := n1b.Health(); return ok })
			if n1b.Digest() != want || n2.Digest() != want {
				t.Fatalf("digests %s %s, want %s", n1b.Digest(), n2.Digest(), want)
			}
			for i := range 50 {
				f, err := n1b.GetFactoid(fmt.Sprintf("b%d", i))
				if err != nil || f.Value != "v" {
					t.Fatalf("acknowledged write b%d lost: %v", i, err)
				}
			}
			if f, _ := n1b.GetFactoid("a10"); !f.Forgotten {
				t.Fatal("forget after the snapshot lost")
			}
			ev := hl.list()
			if len(ev) != 2 || !strings.HasPrefix(ev[0], "false db-error") || ev[1] != "true " {
				t.Fatalf("health events = %q", ev)
			}
		})
	}
}

func TestCorruptWithoutSnapshotOrPeersHealsAfterWait(t *testing.T) {
	dir := t.TempDir()
	n1 := openDisk(t, "n1", dir)
	if _, err := n1.SetFactoid("a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	corrupt(t, filepath.Join(dir, "db"), "manifest")
	n1b := openDisk(t, "n1", dir)
	if ok, _ := n1b.Health(); ok {
		t.Fatal("should be unhealthy")
	}
	if n1b.Stats().Entries != 0 {
		t.Fatal("should start empty")
	}
	n1b.Start() // no transport: no peers; heals after HealWait
	eventually(t, "healthy", func() bool { ok, _ := n1b.Health(); return ok })
	if _, err := n1b.SetFactoid("a", "b", "c"); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshots(t *testing.T) {
	net := newMemNet()
	dir := t.TempDir()
	c := testConfig("n1")
	c.InMemory, c.Dir, c.SnapshotKeep = false, dir, 2
	n1 := openT(t, c)
	n2 := openMem(t, "n2")
	net.add(n1)
	net.add(n2)
	var ids []string
	for i := range 3 {
		if _, err := n1.SetFactoid(fmt.Sprintf("f%d", i), "v", "x"); err != nil {
			t.Fatal(err)
		}
		sn, err := n1.CreateSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		if !sn.Verified || sn.Entries != int64(2*(i+1)) || sn.Size == 0 {
			t.Fatalf("snapshot %+v", sn)
		}
		ids = append(ids, sn.ID)
	}
	snaps, err := n1.Snapshots()
	if err != nil || len(snaps) != 2 || snaps[0].ID != ids[1] || snaps[1].ID != ids[2] {
		t.Fatalf("snapshots after prune: %+v %v", snaps, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", ids[0]+".backup")); !os.IsNotExist(err) {
		t.Fatalf("pruned snapshot file still there: %v", err)
	}
	if st := n1.Stats(); !st.LastSnapshot.Equal(snaps[1].Time) {
		t.Fatalf("last snapshot %v", st.LastSnapshot)
	}
	if err := n1.RestoreSnapshot("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore unknown: %v", err)
	}
	waitConverged(t, n1, n2)
	want := n1.Digest()
	if err := n1.RestoreSnapshot(ids[1]); err != nil {
		t.Fatal(err)
	}
	if ok, reason := n1.Health(); ok || !strings.HasPrefix(reason, "db-error: restoring snapshot ") {
		t.Fatalf("health during restore heal: %v %q", ok, reason)
	}
	if _, err := n1.GetFactoid("f2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("f2 should be gone after restoring the older snapshot: %v", err)
	}
	if _, err := n1.CreateSnapshot(); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("snapshot of an unhealed store: %v", err)
	}
	n1.Start()
	eventually(t, "healed", func() bool { ok, _ := n1.Health(); return ok })
	if n1.Digest() != want {
		t.Fatal("not healed to the peer's state")
	}
	mem := openMem(t, "m")
	if _, err := mem.CreateSnapshot(); !errors.Is(err, ErrSnapshotsDisabled) {
		t.Fatalf("in-memory snapshot: %v", err)
	}
}

func TestRuntimeDBErrorRecovers(t *testing.T) {
	net := newMemNet()
	dir := t.TempDir()
	hl := &healthLog{}
	c := testConfig("n1")
	c.InMemory, c.Dir, c.OnHealth = false, dir, hl.record
	n1 := openT(t, c)
	n2 := openMem(t, "n2")
	net.add(n1)
	net.add(n2)
	if _, err := n1.SetFactoid("before", "v", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.CreateSnapshot(); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.SetFactoid("after", "v", "x"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, n1, n2)
	want := n2.Digest()
	n1.Start()
	n2.Start()
	n1.dbFailed(errors.New("injected i/o error"))
	if ok, reason := n1.Health(); ok || reason != "db-error: injected i/o error" {
		t.Fatalf("health = %v %q", ok, reason)
	}
	eventually(t, "recovered and healed", func() bool {
		ok, _ := n1.Health()
		return ok && n1.Stats().Recoveries == 1
	})
	if n1.Digest() != want {
		t.Fatal("not healed")
	}
	if f, err := n1.GetFactoid("after"); err != nil || f.Value != "v" {
		t.Fatalf("write after the snapshot: %+v %v", f, err)
	}
	if broken, _ := filepath.Glob(filepath.Join(dir, "db.broken-*")); len(broken) != 1 {
		t.Fatalf("broken dirs: %v", broken)
	}
	if ev := hl.list(); len(ev) != 2 {
		t.Fatalf("health events %q", ev)
	}
}
