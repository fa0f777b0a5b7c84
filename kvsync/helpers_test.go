package kvsync

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("KVSYNC_CRASH_CHILD"); dir != "" {
		crashChild(dir) // never returns: killed by the parent
	}
	goleak.VerifyTestMain(m)
}

// memNet is an in-memory network of stores with injectable broadcast loss
// and partitions.
type memNet struct {
	mu     sync.Mutex
	nodes  map[string]*Store
	group  map[string]int // partition group; nodes talk only within a group
	loss   float64        // broadcast loss probability
	rng    *rand.Rand
	hold   bool // queue broadcasts instead of delivering them
	queued []queuedMsg
	sent   [][]byte // every broadcast payload, for checking merge results
}

type queuedMsg struct {
	from, to string
	p        []byte
}

func newMemNet() *memNet {
	return &memNet{nodes: map[string]*Store{}, group: map[string]int{}, rng: rand.New(rand.NewPCG(1, 2))}
}

func (n *memNet) add(s *Store) {
	n.mu.Lock()
	n.nodes[s.cfg.Node] = s
	n.mu.Unlock()
	s.SetTransport(&memTransport{net: n, self: s.cfg.Node})
}

func (n *memNet) remove(name string) {
	n.mu.Lock()
	delete(n.nodes, name)
	n.mu.Unlock()
}

func (n *memNet) partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.group)
	for i, g := range groups {
		for _, name := range g {
			n.group[name] = i + 1
		}
	}
}

func (n *memNet) heal() { n.partition() }

func (n *memNet) setLoss(p float64) {
	n.mu.Lock()
	n.loss = p
	n.mu.Unlock()
}

func (n *memNet) reachable(a, b string) bool { return n.group[a] == n.group[b] }

type memTransport struct {
	net  *memNet
	self string
}

func (t *memTransport) Broadcast(p []byte) {
	n := t.net
	n.mu.Lock()
	n.sent = append(n.sent, slices.Clone(p))
	var targets []*Store
	for name, s := range n.nodes {
		if name == t.self || !n.reachable(t.self, name) {
			continue
		}
		if n.loss > 0 && n.rng.Float64() < n.loss {
			continue
		}
		if n.hold {
			n.queued = append(n.queued, queuedMsg{t.self, name, slices.Clone(p)})
			continue
		}
		targets = append(targets, s)
	}
	n.mu.Unlock()
	for _, s := range targets {
		s.HandleMessage(t.self, slices.Clone(p))
	}
}

func (t *memTransport) SendTo(node string, p []byte) error {
	n := t.net
	n.mu.Lock()
	s := n.nodes[node]
	ok := s != nil && n.reachable(t.self, node)
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("node %s unreachable", node)
	}
	s.HandleMessage(t.self, slices.Clone(p))
	return nil
}

func (t *memTransport) Peers() []string {
	n := t.net
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name := range n.nodes {
		if name != t.self && n.reachable(t.self, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func testConfig(node string) Config {
	c := DefaultConfig()
	c.Node = node
	c.InMemory = true
	c.SyncInterval = 50 * time.Millisecond
	c.RequestTimeout = 5 * time.Second
	c.PopularityFlush = 20 * time.Millisecond
	c.HealWait = 200 * time.Millisecond
	return c
}

func openT(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Node, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openMem(t testing.TB, node string) *Store { return openT(t, testConfig(node)) }

func openDisk(t testing.TB, node, dir string) *Store {
	c := testConfig(node)
	c.InMemory = false
	c.Dir = dir
	return openT(t, c)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func digests(ss ...*Store) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Digest()
	}
	return out
}

func allEqual(ss ...*Store) bool {
	d := digests(ss...)
	for _, x := range d[1:] {
		if x != d[0] {
			return false
		}
	}
	return true
}

// contents returns every replicated record of s as comparable strings.
func contents(t tb, s *Store) []string {
	t.Helper()
	var out []string
	if err := s.scanAll(func(r record) bool {
		out = append(out, fmt.Sprintf("%c|%q|%x|%s|%s|%v", r.ks, r.key, r.value, r.ts, r.node, r.tomb))
		return true
	}); err != nil {
		t.Fatalf("scan: %v", err)
	}
	slices.Sort(out)
	return out
}

// tb is the part of testing.TB that helpers need (also met by *rapid.T).
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// syncOnce runs one synchronous anti-entropy round from a to b.
func syncOnce(t tb, a *Store, b string) {
	t.Helper()
	if err := a.syncWith(a.ctx, b); err != nil {
		t.Fatalf("sync %s -> %s: %v", a.cfg.Node, b, err)
	}
}
