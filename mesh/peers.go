package mesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"time"
)

// retryBackoffMax caps the per-target backoff at this many RetryIntervals.
const retryBackoffMax = 8

// loadKnownPeers reads the known peers file (a JSON array of "host:port").
// A missing file is not an error.
func (m *Mesh) loadKnownPeers() []string {
	if m.cfg.KnownPeersFile == "" {
		return nil
	}
	b, err := os.ReadFile(m.cfg.KnownPeersFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		m.log.Warn("read known peers", "err", err)
		return nil
	}
	peers, err := parseKnownPeers(b)
	if err != nil {
		m.log.Warn("known peers file", "file", m.cfg.KnownPeersFile, "err", err)
		return nil
	}
	return peers
}

// parseKnownPeers parses and validates the known peers file content.
func parseKnownPeers(b []byte) ([]string, error) {
	var peers []string
	if err := json.Unmarshal(b, &peers); err != nil {
		return nil, fmt.Errorf("not a JSON array of addresses: %w", err)
	}
	out := peers[:0]
	for _, p := range peers {
		if err := validateHostPort("known peer", p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// saveKnownPeers writes the addresses of alive peers. If no peer is alive
// the file is left alone, so a node that lost everyone still remembers.
func (m *Mesh) saveKnownPeers() error {
	m.mu.Lock()
	var addrs []string
	for _, ms := range m.members {
		if ms.name != m.name && ms.status == StatusAlive && ms.addr != "" {
			addrs = append(addrs, ms.addr)
		}
	}
	m.mu.Unlock()
	if len(addrs) == 0 {
		return nil
	}
	sort.Strings(addrs)
	b, _ := json.Marshal(addrs)
	return writeFileAtomic(m.cfg.KnownPeersFile, append(b, '\n'), 0o644)
}

// joinTargets lists the addresses to (re-)join: seeds, known peers (as
// loaded at Start) and members that failed (not those that left), minus
// our own address and, unless initial, addresses of alive members.
func (m *Mesh) joinTargets(initial bool) []string {
	cands := append([]string(nil), m.cfg.Join...)
	m.mu.Lock()
	cands = append(cands, m.known...)
	self := m.members[m.name].addr
	alive := map[string]bool{}
	for _, ms := range m.members {
		if ms.name == m.name {
			continue
		}
		switch ms.status {
		case StatusAlive, StatusSuspect:
			alive[ms.addr] = true
		case StatusDead:
			cands = append(cands, ms.addr)
		}
	}
	m.mu.Unlock()
	seen := map[string]bool{self: true}
	var out []string
	for _, c := range cands {
		if c == "" || seen[c] || (!initial && alive[c]) {
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	return out
}

// joinOne joins a single address and reports success.
func (m *Mesh) joinOne(addr string) error {
	ml, ok := m.running()
	if !ok {
		return ErrNotRunning
	}
	if _, err := ml.Join([]string{addr}); err != nil {
		return err
	}
	return nil
}

// joinAll joins targets concurrently (at most 8 at a time) and returns how
// many answered. Failures are logged at warn level if loud, else debug.
func (m *Mesh) joinAll(targets []string, loud bool) int {
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ok  int
		sem = make(chan struct{}, 8)
	)
	for _, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := m.joinOne(t)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case loud:
				m.log.Warn("join failed", "addr", t, "err", err)
			default:
				m.log.Debug("join failed", "addr", t, "err", err)
			}
		}()
	}
	wg.Wait()
	return ok
}

type retryState struct {
	fails int
	next  time.Time
}

// retryLoop periodically re-joins seeds, known peers and failed members that
// are not alive, so that a healed partition or a restarted seed re-merges.
// Unreachable targets back off exponentially up to 8 RetryIntervals; a
// target that answered is retried (if still not an alive member's address)
// after 8 intervals. Only changes (first failure, recovery) are logged
// above debug level. It also pushes our state to members that came back
// (syncQ) at once.
func (m *Mesh) retryLoop() {
	defer m.wg.Done()
	interval := m.cfg.RetryInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	states := map[string]*retryState{}
	for {
		select {
		case <-m.stop:
			return
		case <-m.syncSig:
			m.mu.Lock()
			addrs := make([]string, 0, len(m.syncQ))
			for a := range m.syncQ {
				addrs = append(addrs, a)
			}
			clear(m.syncQ)
			m.mu.Unlock()
			m.joinAll(addrs, false)
			continue
		case <-t.C:
		}
		if _, ok := m.running(); !ok {
			continue
		}
		m.mu.Lock()
		left := m.state == stateLeft
		m.mu.Unlock()
		if left {
			continue
		}
		now := time.Now()
		var due []string
		targets := m.joinTargets(false)
		current := map[string]bool{}
		for _, addr := range targets {
			current[addr] = true
			st := states[addr]
			if st == nil {
				st = &retryState{}
				states[addr] = st
			}
			if now.Before(st.next) {
				continue
			}
			due = append(due, addr)
		}
		for addr := range states {
			if !current[addr] {
				delete(states, addr)
			}
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		var mu sync.Mutex
		for _, addr := range due {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				err := m.joinOne(addr)
				mu.Lock()
				defer mu.Unlock()
				st := states[addr]
				if err == nil {
					if st.fails > 0 {
						m.log.Info("rejoined", "addr", addr, "after_failures", st.fails)
					} else {
						m.log.Debug("rejoined", "addr", addr)
					}
					st.fails = 0
					// A reachable seed given as a host name never
					// matches a member address; re-join it only at
					// the backoff cap so it costs one push/pull per
					// 8 intervals, not per interval.
					st.next = time.Now().Add(retryBackoffMax*interval - interval/2)
					return
				}
				st.fails++
				if st.fails == 1 {
					m.log.Warn("cannot reach peer; will keep retrying", "addr", addr, "err", err)
				} else {
					m.log.Debug("retry failed", "addr", addr, "fails", st.fails, "err", err)
				}
				backoff := interval << min(st.fails, 10)
				backoff = min(backoff, retryBackoffMax*interval)
				st.next = time.Now().Add(backoff - interval/2)
			}()
		}
		wg.Wait()
	}
}
