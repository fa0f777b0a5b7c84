package kvsync

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func cluster(t *testing.T, n int, start bool) (*memNet, []*Store) {
	t.Helper()
	net := newMemNet()
	var ss []*Store
	for i := range n {
		s := openMem(t, fmt.Sprintf("n%02d", i))
		net.add(s)
		ss = append(ss, s)
	}
	if start {
		for _, s := range ss {
			s.Start()
		}
	}
	return net, ss
}

func waitConverged(t *testing.T, ss ...*Store) {
	t.Helper()
	eventually(t, "equal digests", func() bool { return allEqual(ss...) })
	want := contents(t, ss[0])
	for _, s := range ss[1:] {
		if got := contents(t, s); !slices.Equal(got, want) {
			t.Fatalf("%s and %s have equal digests but different contents", ss[0].cfg.Node, s.cfg.Node)
		}
	}
}

func TestBroadcastFastPath(t *testing.T) {
	_, ss := cluster(t, 3, false) // no anti-entropy: broadcasts only
	if _, err := ss[0].SetFactoid("x", "y", "a"); err != nil {
		t.Fatal(err)
	}
	if err := ss[1].AddChannel("#c"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ss...)
	f, err := ss[2].GetFactoid("x")
	if err != nil || f.Value != "y" {
		t.Fatalf("replicated factoid: %+v %v", f, err)
	}
	if ss[2].Stats().SyncRounds != 0 {
		t.Fatal("anti-entropy ran")
	}
}

func TestAntiEntropyRepairsLostBroadcasts(t *testing.T) {
	net, ss := cluster(t, 3, true)
	net.setLoss(1) // every broadcast lost
	for i := range 50 {
		s := ss[i%3]
		if _, err := s.SetFactoid(fmt.Sprintf("f%d", i), "v", "a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss[0].AddChannel("#a"); err != nil {
		t.Fatal(err)
	}
	if err := ss[1].RemoveChannel("#a"); err == nil {
		t.Fatal("remove of a channel not yet replicated should fail")
	}
	waitConverged(t, ss...)
	if n := ss[2].Stats().Entries; n != 101 {
		t.Fatalf("entries = %d, want 101 (50 factoids + 50 log entries + 1 channel)", n)
	}
}

func TestTenNodesLossAndPartition(t *testing.T) {
	net, ss := cluster(t, 10, true)
	net.setLoss(0.3)
	var left, right []string
	for i, s := range ss {
		if i < 5 {
			left = append(left, s.cfg.Node)
		} else {
			right = append(right, s.cfg.Node)
		}
	}
	net.partition(left, right)
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if _, err := s.SetFactoid(fmt.Sprintf("k%d", j), fmt.Sprintf("from %s", s.cfg.Node), s.cfg.Node); err != nil {
					t.Error(err)
				}
			}
			if err := s.Demote(s.cfg.Node, time.Unix(int64(i), 0)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitConverged(t, ss[:5]...)
	waitConverged(t, ss[5:]...)
	if ss[0].Digest() == ss[9].Digest() {
		t.Fatal("partitioned halves should differ")
	}
	net.heal()
	waitConverged(t, ss...)
	// Every key has one winner everywhere.
	f0, _ := ss[0].GetFactoid("k3")
	for _, s := range ss[1:] {
		if f, _ := s.GetFactoid("k3"); f.Value != f0.Value {
			t.Fatalf("k3 differs: %q vs %q", f.Value, f0.Value)
		}
	}
	if ds, _ := ss[4].Demotions(); len(ds) != 10 {
		t.Fatalf("demotions = %d, want 10", len(ds))
	}
}

// loadRecords writes n synthetic records to every store (identical data).
func loadRecords(t testing.TB, n int, ss ...*Store) {
	t.Helper()
	const chunk = 1000
	for off := 0; off < n; off += chunk {
		var rs []record
		for i := off; i < min(n, off+chunk); i++ {
			name := fmt.Sprintf("factoid-%07d", i)
			f := Factoid{Name: name, Value: "value of " + name, Author: "bench", Added: time.Unix(1e9, 0)}
			rs = append(rs, record{ks: ksFactoids, key: name, value: encodeFactoid(f), ts: MakeTimestamp(1e12, 0), node: "loader"})
		}
		for _, s := range ss {
			if _, err := s.applyRemote(rs); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestOneDifferenceRoundTripsAndBytes(t *testing.T) {
	n := 10000
	for _, dir := range []string{"pull", "push"} {
		t.Run(dir, func(t *testing.T) {
			net := newMemNet()
			a, b := openMem(t, "a"), openMem(t, "b")
			net.add(a)
			net.add(b)
			loadRecords(t, n, a, b)
			net.setLoss(1)
			writer := b
			if dir == "push" {
				writer = a
			}
			if _, err := writer.SetFactoid("factoid-0000042", "changed", "x"); err != nil {
				t.Fatal(err)
			}
			before := a.Stats()
			bBefore := b.Stats()
			syncOnce(t, a, "b")
			after := a.Stats()
			bAfter := b.Stats()
			rts := after.SyncRoundTrips - before.SyncRoundTrips
			bytes := after.SyncBytesSent - before.SyncBytesSent + bAfter.SyncBytesSent - bBefore.SyncBytesSent
			t.Logf("%d records, 2 differing (factoid + log entry): %d round trips, %d bytes", n, rts, bytes)
			if rts > 4 || bytes > 4096 {
				t.Fatalf("%d round trips, %d bytes; want <= 4 and <= 4096", rts, bytes)
			}
			if a.Digest() != b.Digest() {
				t.Fatal("not equal after one round")
			}
			// A second round between equal stores is one small round trip.
			syncOnce(t, a, "b")
			if d := a.Stats().SyncRoundTrips - after.SyncRoundTrips; d != 1 {
				t.Fatalf("equal stores needed %d round trips", d)
			}
		})
	}
}

func TestCatchUpAfterRestart(t *testing.T) {
	net := newMemNet()
	dir := t.TempDir()
	n1 := openDisk(t, "n1", dir)
	n2, n3 := openMem(t, "n2"), openMem(t, "n3")
	for _, s := range []*Store{n1, n2, n3} {
		net.add(s)
		s.Start()
	}
	for i := range 20 {
		if _, err := n2.SetFactoid(fmt.Sprintf("pre%d", i), "v", "a"); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, n1, n2, n3)
	net.remove("n1")
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 320 {
		s := n2
		if i%2 == 1 {
			s = n3
		}
		name := fmt.Sprintf("edit%d", i%100)
		if _, err := s.SetFactoid(name, fmt.Sprintf("v%d", i), "a"); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			_ = s.ForgetFactoid(fmt.Sprintf("pre%d", i/10%20), "a")
			_ = s.AddChannel(fmt.Sprintf("#c%d", i))
		}
		if i%30 == 0 {
			_ = s.RemoveChannel(fmt.Sprintf("#c%d", i-10))
		}
	}
	n1b := openDisk(t, "n1", dir)
	net.add(n1b)
	n1b.Start()
	n1b.SyncNow("n2")
	waitConverged(t, n1b, n2, n3)
}

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestTombstoneCollection(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1.7e9, 0)}
	net := newMemNet()
	var ss []*Store
	for i := range 3 {
		c := testConfig(fmt.Sprintf("n%d", i))
		c.Now = clk.Now
		c.TombstoneTTL = time.Hour
		s := openT(t, c)
		net.add(s)
		ss = append(ss, s)
	}
	syncAll := func() {
		for _, a := range ss {
			for _, b := range ss {
				if a != b {
					syncOnce(t, a, b.cfg.Node)
				}
			}
		}
	}
	for i := range 5 {
		if err := ss[0].AddChannel(fmt.Sprintf("#c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	syncAll()
	for i := range 5 {
		if err := ss[1].RemoveChannel(fmt.Sprintf("#c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	syncAll()
	if st := ss[2].Stats(); st.Tombstones != 5 || st.Entries != 0 {
		t.Fatalf("stats before GC: %+v", st)
	}
	// Not old enough yet.
	if n, _ := ss[0].collectTombstones(); n != 0 {
		t.Fatalf("collected %d young tombstones", n)
	}
	clk.Add(2 * time.Hour)
	// Old enough, but no round with the peers since the TTL ran out.
	if n, _ := ss[0].collectTombstones(); n != 0 {
		t.Fatalf("collected %d tombstones before peers synced", n)
	}
	// Only node 0 completes rounds and collects: the others still hold
	// the tombstones, which must not come back to node 0 for good.
	syncOnce(t, ss[0], "n1")
	syncOnce(t, ss[0], "n2")
	if n, err := ss[0].collectTombstones(); n != 5 || err != nil {
		t.Fatalf("collected %d (%v), want 5", n, err)
	}
	// Rounds now transfer the expired tombstones to node 0, which ignores
	// them; the counts stay bounded and node 0 stays clean.
	syncAll()
	if st := ss[0].Stats(); st.Tombstones != 0 {
		t.Fatalf("node 0 took collected tombstones back: %+v", st)
	}
	for _, s := range ss[1:] {
		if n, err := s.collectTombstones(); n != 5 || err != nil {
			t.Fatalf("%s collected %d (%v)", s.cfg.Node, n, err)
		}
	}
	waitConverged(t, ss...)
	// Once everyone collected, a round moves no records.
	before := ss[0].Stats().SyncRecordsSent + ss[1].Stats().SyncRecordsSent
	syncAll()
	if after := ss[0].Stats().SyncRecordsSent + ss[1].Stats().SyncRecordsSent; after != before {
		t.Fatalf("rounds after GC still move records: %d -> %d", before, after)
	}
	// A late expired tombstone deletes an older live version it meets.
	old := record{ks: ksChannels, key: "#late", value: []byte("#late"), ts: MakeTimestamp(clk.Now().Add(-3*time.Hour).UnixMilli(), 0), node: "x"}
	if _, err := ss[0].applyRemote([]record{old}); err != nil {
		t.Fatal(err)
	}
	tomb := record{ks: ksChannels, key: "#late", ts: old.ts + 1, node: "x", tomb: true}
	if _, err := ss[0].applyRemote([]record{tomb}); err != nil {
		t.Fatal(err)
	}
	if st := ss[0].Stats(); st.Entries != 0 || st.Tombstones != 0 {
		t.Fatalf("late tombstone: %+v", st)
	}
}
