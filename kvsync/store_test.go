package kvsync

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFactoidLifecycle(t *testing.T) {
	s := openMem(t, "n1")
	if _, err := s.GetFactoid("Ubuntu"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	f, err := s.SetFactoid("Ubuntu", "a Linux distribution", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "ubuntu" || f.Value != "a Linux distribution" || f.Author != "alice" || f.Added.IsZero() {
		t.Fatalf("set returned %+v", f)
	}
	if _, err := s.SetFactoid("UBUNTU", "an OS", "bob"); err != nil {
		t.Fatal(err)
	}
	g, err := s.GetFactoid("ubuntu")
	if err != nil || g.Value != "an OS" || g.Author != "alice" || g.UpdatedBy != "bob" || g.Updated.IsZero() {
		t.Fatalf("get after replace: %+v %v", g, err)
	}
	if err := s.ForgetFactoid("ubuntu", "carol"); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetFactoid("ubuntu", "carol"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("double forget: %v", err)
	}
	g, err = s.GetFactoid("ubuntu")
	if err != nil || !g.Forgotten {
		t.Fatalf("forgotten get: %+v %v", g, err)
	}
	if res, _ := s.SearchFactoids("os", 0); len(res) != 0 {
		t.Fatalf("search found forgotten: %+v", res)
	}
	if err := s.UnforgetFactoid("ubuntu", "dave"); err != nil {
		t.Fatal(err)
	}
	if err := s.UnforgetFactoid("ubuntu", "dave"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("double unforget: %v", err)
	}
	if err := s.ForgetFactoid("nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forget missing: %v", err)
	}
	log, err := s.FactoidLog("Ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	want := []LogEntry{
		{Name: "ubuntu", Author: "alice", NewValue: "a Linux distribution"},
		{Name: "ubuntu", Author: "bob", OldValue: "a Linux distribution", NewValue: "an OS"},
		{Name: "ubuntu", Author: "carol", OldValue: "an OS"},
		{Name: "ubuntu", Author: "dave", NewValue: "an OS"},
	}
	if len(log) != len(want) {
		t.Fatalf("log has %d entries: %+v", len(log), log)
	}
	for i := range want {
		got := log[i]
		got.At = time.Time{}
		if got != want[i] {
			t.Errorf("log[%d] = %+v, want %+v", i, got, want[i])
		}
	}
	if _, err := s.FactoidLog("nothing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("log of missing: %v", err)
	}
}

func TestSearchAndPopularity(t *testing.T) {
	s := openMem(t, "n1")
	for _, kv := range [][2]string{{"grub", "the boot loader"}, {"boot", "see grub"}, {"apt", "package manager"}, {"old", "boot stuff"}} {
		if _, err := s.SetFactoid(kv[0], kv[1], "a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ForgetFactoid("old", "a"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words string
		limit int
		want  []string
	}{
		{"boot", 0, []string{"boot", "grub"}},
		{"BOOT grub", 0, []string{"boot", "grub"}},
		{"boot loader", 0, []string{"grub"}},
		{"boot", 1, []string{"boot"}},
		{"zzz", 0, nil},
	}
	for _, tc := range tests {
		res, err := s.SearchFactoids(tc.words, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range res {
			names = append(names, f.Name)
		}
		if strings.Join(names, ",") != strings.Join(tc.want, ",") {
			t.Errorf("search %q limit %d = %v, want %v", tc.words, tc.limit, names, tc.want)
		}
	}
	if _, err := s.SearchFactoids("  ", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty search: %v", err)
	}
	for range 5 {
		if err := s.CountLookup("GRUB"); err != nil {
			t.Fatal(err)
		}
	}
	f, err := s.GetFactoid("grub")
	if err != nil || f.Popularity != 5 {
		t.Fatalf("popularity before flush: %+v %v", f, err)
	}
	s.flushPopularity()
	if err := s.CountLookup("grub"); err != nil {
		t.Fatal(err)
	}
	f, _ = s.GetFactoid("grub")
	if f.Popularity != 6 {
		t.Fatalf("popularity after flush = %d, want 6", f.Popularity)
	}
}

func TestValidation(t *testing.T) {
	s := openMem(t, "n1")
	long := strings.Repeat("x", 101)
	tests := []struct {
		name, value, author string
	}{
		{"", "v", "a"},
		{long, "v", "a"},
		{"bad\xff", "v", "a"},
		{"nul\x00", "v", "a"},
		{"cr\r", "v", "a"},
		{"lf\n", "v", "a"},
		{"tab\t", "v", "a"},
		{"ok", "", "a"},
		{"ok", strings.Repeat("v", MaxValueBytes+1), "a"},
		{"ok", "bad\xff", "a"},
		{"ok", "nul\x00", "a"},
		{"ok", "cr\r", "a"},
		{"ok", "lf\n", "a"},
		{"ok", "v", "bad\nauthor"},
	}
	for _, tc := range tests {
		if _, err := s.SetFactoid(tc.name, tc.value, tc.author); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetFactoid(%q, %q, %q) = %v, want ErrInvalid", tc.name, tc.value, tc.author, err)
		}
	}
	if st := s.Stats(); st.Entries != 0 {
		t.Fatalf("invalid writes stored %d entries", st.Entries)
	}
	if _, err := s.SetFactoid(strings.Repeat("é", 50), strings.Repeat("v", MaxValueBytes), "a"); err != nil {
		t.Fatalf("limits should be inclusive: %v", err)
	}
	chans := []struct {
		name string
		ok   bool
	}{
		{"#ubuntu", true}, {"&local", true}, {"ubuntu", false}, {"#", false}, {"#a b", false},
		{"#a,b", false}, {"#a\x07", false}, {"#" + strings.Repeat("c", 49), true}, {"#" + strings.Repeat("c", 50), false},
	}
	for _, tc := range chans {
		err := s.AddChannel(tc.name)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrInvalid)) {
			t.Errorf("AddChannel(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if err := s.Demote("", time.Now()); !errors.Is(err, ErrInvalid) {
		t.Errorf("Demote empty: %v", err)
	}
	if err := s.AddEditor("a b"); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddEditor with space: %v", err)
	}
}

func TestChannelsDemotionsEditors(t *testing.T) {
	s := openMem(t, "n1")
	var mu sync.Mutex
	seen := map[string]bool{}
	cancel := s.Subscribe(func(ks string) {
		mu.Lock()
		seen[ks] = true
		mu.Unlock()
	})
	defer cancel()
	for _, c := range []string{"#Ubuntu", "#kubuntu", "#ubuntu"} {
		if err := s.AddChannel(c); err != nil {
			t.Fatal(err)
		}
	}
	chans, _ := s.Channels()
	if strings.Join(chans, ",") != "#kubuntu,#ubuntu" {
		t.Fatalf("channels = %v", chans)
	}
	if err := s.RemoveChannel("#KUBUNTU"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveChannel("#kubuntu"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	t0 := time.Unix(1000, 0).UTC()
	if err := s.Demote("b", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Demote("a", t0); err != nil {
		t.Fatal(err)
	}
	ds, _ := s.Demotions()
	if len(ds) != 2 || ds[0].Node != "a" || !ds[0].At.Equal(t0) || ds[1].Node != "b" {
		t.Fatalf("demotions = %+v", ds)
	}
	if err := s.ClearDemotions(); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.Demotions(); len(ds) != 0 {
		t.Fatalf("after clear: %+v", ds)
	}
	before := s.Digest()
	if err := s.AddEditor("*!*@ubuntu/member/*"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEditor("account:bob"); err != nil {
		t.Fatal(err)
	}
	if s.Digest() != before {
		t.Fatal("editors changed the digest")
	}
	eds, _ := s.Editors()
	if strings.Join(eds, " ") != "*!*@ubuntu/member/* account:bob" {
		t.Fatalf("editors = %v", eds)
	}
	if err := s.RemoveEditor("account:bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveEditor("account:bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove editor twice: %v", err)
	}
	eventually(t, "notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[KeyspaceChannels] && seen[KeyspaceDemotions] && seen[KeyspaceEditors]
	})
}

func TestImportIdempotent(t *testing.T) {
	s := openMem(t, "n1")
	at := time.Date(2010, 1, 2, 3, 4, 5, 0, time.UTC)
	f := Factoid{Name: "Lucid", Value: "Ubuntu 10.04", Author: "x", Added: at, UpdatedBy: "y", Updated: at.Add(time.Hour), Popularity: 42}
	log := []LogEntry{
		{Author: "x", At: at, NewValue: "Ubuntu 10.4"},
		{Author: "y", At: at.Add(time.Hour), OldValue: "Ubuntu 10.4", NewValue: "Ubuntu 10.04"},
	}
	created, err := s.ImportFactoid(f, log)
	if err != nil || !created {
		t.Fatalf("first import: %v %v", created, err)
	}
	d := s.Digest()
	created, err = s.ImportFactoid(f, log)
	if err != nil || created {
		t.Fatalf("second import: %v %v", created, err)
	}
	if s.Digest() != d {
		t.Fatal("re-import wrote something")
	}
	g, _ := s.GetFactoid("lucid")
	if g.Value != f.Value || g.Popularity != 42 || !g.Added.Equal(at) || g.UpdatedBy != "y" {
		t.Fatalf("imported = %+v", g)
	}
	entries, _ := s.FactoidLog("lucid")
	if len(entries) != 2 || entries[1].OldValue != "Ubuntu 10.4" {
		t.Fatalf("imported log = %+v", entries)
	}
	if _, err := s.ImportFactoid(Factoid{Name: "x", Value: "bad\n"}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid import: %v", err)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, "n1", dir)
	if _, err := s.SetFactoid("a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEditor("account:x"); err != nil {
		t.Fatal(err)
	}
	if err := s.CountLookup("a"); err != nil {
		t.Fatal(err)
	}
	s.flushPopularity()
	d := s.Digest()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.GetFactoid("a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	s2 := openDisk(t, "n1", dir)
	f, err := s2.GetFactoid("a")
	if err != nil || f.Value != "b" || f.Popularity != 1 {
		t.Fatalf("after reopen: %+v %v", f, err)
	}
	if s2.Digest() != d {
		t.Fatalf("digest after reopen %s, want %s", s2.Digest(), d)
	}
	if ok, _ := s2.Health(); !ok {
		t.Fatal("reopened store unhealthy")
	}
	eds, _ := s2.Editors()
	if len(eds) != 1 {
		t.Fatalf("editors after reopen: %v", eds)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	tests := []Config{
		{InMemory: true},
		{Node: "n1"},
		{Node: "bad\x00", InMemory: true},
	}
	for _, c := range tests {
		if _, err := Open(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid", c, err)
		}
	}
}
