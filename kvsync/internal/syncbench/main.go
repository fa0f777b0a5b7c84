// Command syncbench measures kvsync and prints a markdown table: lookup
// throughput and p99 latency with 100k factoids, anti-entropy cost of one
// differing factoid among 100k and 1M, catch-up time of 10k missed edits,
// and RSS with 100k factoids on disk.
//
//	go run ./kvsync/internal/syncbench [-big=false]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshbot/meshbot/kvsync"
)

func main() {
	big := flag.Bool("big", true, "include the 1M-record anti-entropy run (needs ~2 GB RAM, ~1 min)")
	flag.Parse()
	if err := run(os.Stdout, *big); err != nil {
		fmt.Fprintln(os.Stderr, "syncbench:", err)
		os.Exit(1)
	}
}

type row struct{ name, value string }

func run(w io.Writer, big bool) error {
	var rows []row
	add := func(name, format string, args ...any) {
		rows = append(rows, row{name, fmt.Sprintf(format, args...)})
		fmt.Fprintf(os.Stderr, "%s: %s\n", name, rows[len(rows)-1].value)
	}

	// RSS and lookups with 100k factoids on disk.
	dir, err := os.MkdirTemp("", "syncbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rssBefore := vmRSS()
	cfg := kvsync.DefaultConfig()
	cfg.Node, cfg.Dir, cfg.SnapshotEvery = "bench", dir, 0
	s, err := kvsync.Open(cfg)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := load(s, 100_000); err != nil {
		return err
	}
	add("load 100k factoids (ImportFactoids, batches of 1000, fsync per 256)", "%.2f s", time.Since(t0).Seconds())
	runtime.GC()
	debug.FreeOSMemory()
	add("RSS with 100k factoids open on disk (VmRSS; before open)", "%.1f MiB (%.1f MiB)", float64(vmRSS())/(1<<20), float64(rssBefore)/(1<<20))
	add("Go heap in use (runtime/metrics /memory/classes/heap/objects:bytes)", "%.1f MiB", heapObjects()/(1<<20))
	add("disk usage (Badger LSM + vlog)", "%.1f MiB", float64(s.Stats().DiskBytes)/(1<<20))

	for _, g := range []int{1, 2} {
		n, p50, p99 := lookups(s, g, 2*time.Second)
		add(fmt.Sprintf("lookups/s, %d goroutine(s), GetFactoid on 100k", g), "%.0f/s (p50 %s, p99 %s)", n, p50, p99)
	}
	t0 = time.Now()
	sn, err := s.CreateSnapshot()
	if err != nil {
		return err
	}
	add("snapshot of 100k factoids (backup + verify)", "%.0f ms, %.1f MiB", float64(time.Since(t0).Microseconds())/1000, float64(sn.Size)/(1<<20))
	if err := s.Close(); err != nil {
		return err
	}

	sizes := []int{100_000}
	if big {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		rt, bytes, d, err := oneDiff(n)
		if err != nil {
			return err
		}
		add(fmt.Sprintf("anti-entropy, 1 changed factoid among %d", n), "%d round trips, %d bytes, %.1f ms", rt, bytes, float64(d.Microseconds())/1000)
	}
	d, rt, bytes, err := catchUp(10_000)
	if err != nil {
		return err
	}
	add("catch-up of 10k missed edits (1k factoids, store on disk)", "%.0f ms, %d round trips, %.1f KiB", float64(d.Microseconds())/1000, rt, float64(bytes)/1024)

	fmt.Fprintf(w, "| measurement | result |\n|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s |\n", r.name, r.value)
	}
	fmt.Fprintf(w, "\n%s, %s/%s, %d CPUs, %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	return nil
}

func load(s *kvsync.Store, n int) error {
	items := make([]kvsync.ImportItem, 0, 1000)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("factoid-%07d", i)
		items = append(items, kvsync.ImportItem{Factoid: kvsync.Factoid{
			Name: name, Value: "the value of " + name + " is something useful", Author: "bench", Added: time.Unix(1e9, 0)}})
		if len(items) == cap(items) || i == n-1 {
			if _, err := s.ImportFactoids(items); err != nil {
				return err
			}
			items = items[:0]
		}
	}
	return nil
}

func lookups(s *kvsync.Store, goroutines int, d time.Duration) (perSec float64, p50, p99 time.Duration) {
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			var lat []time.Duration
			for time.Since(start) < d {
				t0 := time.Now()
				if _, err := s.GetFactoid(fmt.Sprintf("factoid-%07d", r.IntN(100_000))); err != nil {
					panic(err)
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(all)
	return float64(len(all)) / el.Seconds(), all[len(all)/2].Round(time.Microsecond / 10), all[len(all)*99/100].Round(time.Microsecond / 10)
}

// net is an in-process transport; broadcasts can be switched off so that
// only anti-entropy repairs.
type net struct {
	mu      sync.Mutex
	stores  map[string]*kvsync.Store
	noBcast bool
}

type tr struct {
	n    *net
	self string
}

func (t tr) Broadcast(p []byte) {
	t.n.mu.Lock()
	if t.n.noBcast {
		t.n.mu.Unlock()
		return
	}
	var to []*kvsync.Store
	for name, s := range t.n.stores {
		if name != t.self {
			to = append(to, s)
		}
	}
	t.n.mu.Unlock()
	for _, s := range to {
		s.HandleMessage(t.self, slices.Clone(p))
	}
}

func (t tr) SendTo(node string, p []byte) error {
	t.n.mu.Lock()
	s := t.n.stores[node]
	t.n.mu.Unlock()
	if s == nil {
		return fmt.Errorf("no node %s", node)
	}
	s.HandleMessage(t.self, slices.Clone(p))
	return nil
}

func (t tr) Peers() []string {
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	var out []string
	for name := range t.n.stores {
		if name != t.self {
			out = append(out, name)
		}
	}
	return out
}

func memStore(n *net, name string, dir string) (*kvsync.Store, error) {
	cfg := kvsync.DefaultConfig()
	cfg.Node, cfg.SyncInterval, cfg.SnapshotEvery = name, time.Hour, 0
	if dir == "" {
		cfg.InMemory = true
	} else {
		cfg.Dir = dir
	}
	s, err := kvsync.Open(cfg)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.stores[name] = s
	n.mu.Unlock()
	s.SetTransport(tr{n, name})
	s.Start()
	return s, nil
}

// syncRound asks a for a round with peer and waits until it completed.
func syncRound(a *kvsync.Store, peer string) (time.Duration, error) {
	before := a.Stats()
	t0 := time.Now()
	a.SyncNow(peer)
	for {
		st := a.Stats()
		if st.SyncRounds > before.SyncRounds {
			return time.Since(t0), nil
		}
		if st.SyncFailures > before.SyncFailures {
			return 0, fmt.Errorf("sync round failed")
		}
		if time.Since(t0) > 5*time.Minute {
			return 0, fmt.Errorf("sync round timed out")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func oneDiff(n int) (rt, bytes int64, d time.Duration, err error) {
	nt := &net{stores: map[string]*kvsync.Store{}}
	a, err := memStore(nt, "a", "")
	if err != nil {
		return 0, 0, 0, err
	}
	defer a.Close()
	b, err := memStore(nt, "b", "")
	if err != nil {
		return 0, 0, 0, err
	}
	defer b.Close()
	nt.noBcast = true
	if err := load(a, n); err != nil {
		return 0, 0, 0, err
	}
	if _, err := syncRound(b, "a"); err != nil { // b copies a
		return 0, 0, 0, err
	}
	if a.Stats().Digest != b.Stats().Digest {
		return 0, 0, 0, fmt.Errorf("initial copy incomplete")
	}
	if _, err := b.SetFactoid(fmt.Sprintf("factoid-%07d", n/2), "changed", "x"); err != nil {
		return 0, 0, 0, err
	}
	sa, sb := a.Stats(), b.Stats()
	if d, err = syncRound(a, "b"); err != nil {
		return 0, 0, 0, err
	}
	ea, eb := a.Stats(), b.Stats()
	if ea.Digest != eb.Digest {
		return 0, 0, 0, fmt.Errorf("not repaired")
	}
	return ea.SyncRoundTrips - sa.SyncRoundTrips, ea.SyncBytesSent - sa.SyncBytesSent + eb.SyncBytesSent - sb.SyncBytesSent, d, nil
}

func catchUp(edits int) (time.Duration, int64, int64, error) {
	nt := &net{stores: map[string]*kvsync.Store{}}
	dir, err := os.MkdirTemp("", "syncbench-catchup-")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	a, err := memStore(nt, "a", "")
	if err != nil {
		return 0, 0, 0, err
	}
	defer a.Close()
	b, err := memStore(nt, "b", dir)
	if err != nil {
		return 0, 0, 0, err
	}
	defer b.Close()
	if err := load(a, 1000); err != nil {
		return 0, 0, 0, err
	}
	if _, err := syncRound(b, "a"); err != nil {
		return 0, 0, 0, err
	}
	nt.mu.Lock()
	nt.noBcast = true
	nt.mu.Unlock()
	for i := 0; i < edits; i++ {
		if _, err := a.SetFactoid(fmt.Sprintf("factoid-%07d", i%1000), fmt.Sprintf("edit %d", i), "x"); err != nil {
			return 0, 0, 0, err
		}
	}
	sb, sa := b.Stats(), a.Stats()
	d, err := syncRound(b, "a")
	if err != nil {
		return 0, 0, 0, err
	}
	eb, ea := b.Stats(), a.Stats()
	if ea.Digest != eb.Digest {
		return 0, 0, 0, fmt.Errorf("not caught up")
	}
	return d, eb.SyncRoundTrips - sb.SyncRoundTrips, eb.SyncBytesSent - sb.SyncBytesSent + ea.SyncBytesSent - sa.SyncBytesSent, nil
}

func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	return 0
}

func heapObjects() float64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64())
}
