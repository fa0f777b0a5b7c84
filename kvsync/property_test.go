package kvsync

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestPropertyConvergence: any interleaving of writes, deletes, message
// delivery (any order, duplicated, lost) and restarts, followed by
// anti-entropy, leaves every replica with the same content and digest.
func TestPropertyConvergence(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		const n = 3
		net := newMemNet()
		net.hold = true
		dirs := make([]string, n)
		stores := make([]*Store, n)
		// Node 0 is on disk and is the one that restarts; the others are
		// in memory to keep each check cheap.
		open := func(i int) {
			c := testConfig(fmt.Sprintf("p%d", i))
			c.InMemory, c.Dir = i != 0, dirs[i]
			s, err := Open(c)
			if err != nil {
				rt.Fatalf("open: %v", err)
			}
			stores[i] = s
			net.add(s)
		}
		for i := range n {
			d, err := os.MkdirTemp("", "kvsync-prop-")
			if err != nil {
				rt.Fatal(err)
			}
			dirs[i] = d
			open(i)
		}
		defer func() {
			for i := range n {
				_ = stores[i].Close()
				_ = os.RemoveAll(dirs[i])
			}
		}()
		names := []string{"a", "b", "c"}
		chans := []string{"#x", "#y"}
		node := rapid.IntRange(0, n-1)
		steps := rapid.IntRange(1, 40).Draw(rt, "steps")
		for range steps {
			i := node.Draw(rt, "node")
			s := stores[i]
			switch op := rapid.IntRange(0, 13).Draw(rt, "op"); op {
			case 0, 1:
				_, err := s.SetFactoid(rapid.SampledFrom(names).Draw(rt, "name"), rapid.StringMatching(`[a-z]{1,5}`).Draw(rt, "value"), s.cfg.Node)
				if err != nil {
					rt.Fatal(err)
				}
			case 2:
				_ = s.ForgetFactoid(rapid.SampledFrom(names).Draw(rt, "name"), "x")
			case 3:
				if err := s.AddChannel(rapid.SampledFrom(chans).Draw(rt, "chan")); err != nil {
					rt.Fatal(err)
				}
			case 4:
				_ = s.RemoveChannel(rapid.SampledFrom(chans).Draw(rt, "chan"))
			case 5:
				if rapid.Bool().Draw(rt, "clear") {
					_ = s.ClearDemotions()
				} else if err := s.Demote(fmt.Sprintf("p%d", node.Draw(rt, "demoted")), s.cfg.Now()); err != nil {
					rt.Fatal(err)
				}
			case 6:
				_ = s.CountLookup(rapid.SampledFrom(names).Draw(rt, "name"))
				s.flushPopularity()
			case 7, 8: // deliver (maybe duplicate) a queued broadcast
				net.mu.Lock()
				if len(net.queued) == 0 {
					net.mu.Unlock()
					continue
				}
				k := rapid.IntRange(0, len(net.queued)-1).Draw(rt, "msg")
				m := net.queued[k]
				if op == 7 {
					net.queued = slices.Delete(net.queued, k, k+1)
				}
				to := net.nodes[m.to]
				net.mu.Unlock()
				to.HandleMessage(m.from, m.p)
			case 9: // lose a queued broadcast
				net.mu.Lock()
				if len(net.queued) > 0 {
					k := rapid.IntRange(0, len(net.queued)-1).Draw(rt, "lost")
					net.queued = slices.Delete(net.queued, k, k+1)
				}
				net.mu.Unlock()
			case 10, 11, 12: // anti-entropy round
				j := node.Draw(rt, "peer")
				if j != i {
					syncOnce(rt, s, stores[j].cfg.Node)
				}
			case 13: // restart node 0 (queued messages to it stay deliverable)
				if err := stores[0].Close(); err != nil {
					rt.Fatal(err)
				}
				open(0)
			}
		}
		// Drain broadcast handling, then let anti-entropy finish the job.
		for _, s := range stores {
			s.waitInbox()
		}
		for range 2 {
			for i := range n {
				for j := range n {
					if i != j {
						syncOnce(rt, stores[i], stores[j].cfg.Node)
					}
				}
			}
		}
		// Every record ever written was broadcast; the converged state is
		// exactly the last-writer-wins merge of all of them.
		winners := map[string]record{}
		for _, p := range net.sent {
			m, err := decodeMessage(p)
			if err != nil {
				rt.Fatal(err)
			}
			for _, r := range m.records {
				k := string(storageKey(r.ks, r.key))
				if old, ok := winners[k]; !ok || r.wins(old) {
					winners[k] = r
				}
			}
		}
		var merged []string
		for _, r := range winners {
			merged = append(merged, fmt.Sprintf("%c|%q|%x|%s|%s|%v", r.ks, r.key, r.value, r.ts, r.node, r.tomb))
		}
		slices.Sort(merged)
		want := contents(rt, stores[0])
		if !slices.Equal(merged, want) {
			rt.Fatalf("converged state is not the LWW merge of all writes:\n%v\n%v", want, merged)
		}
		d := stores[0].Digest()
		for _, s := range stores[1:] {
			if s.Digest() != d {
				rt.Fatalf("digest %s != %s", s.Digest(), d)
			}
			if got := contents(rt, s); !slices.Equal(got, want) {
				rt.Fatalf("contents differ:\n%v\n%v", got, want)
			}
		}
		c0, _ := stores[0].Channels()
		for _, s := range stores[1:] {
			if c, _ := s.Channels(); !slices.Equal(c, c0) {
				rt.Fatalf("channels differ: %v vs %v", c, c0)
			}
		}
	})
}
