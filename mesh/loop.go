package mesh

import (
	"fmt"
	"math"
	"time"
)

// runLoop is the decision goroutine: it re-evaluates the decision on every
// change and every tick (hold-downs expire with time), applies sticky
// demotions, detects process freezes and writes the known peers file.
func (m *Mesh) runLoop() {
	defer m.wg.Done()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	freezeGap := max(minFreezeGap, 4*m.mlc.ProbeInterval)
	last := time.Now()
	var lastPeersWrite time.Time
	for {
		select {
		case <-m.stop:
			return
		case <-m.wake:
			m.evaluate()
		case <-t.C:
			now := time.Now()
			if gap := now.Sub(last); gap > freezeGap {
				m.freezeDetected(gap)
			}
			last = now
			// Every change wakes the loop, so a tick only needs to
			// recompute when time alone can change the decision (a
			// hold-down expiring) or the demotions are due for a
			// re-read.
			if m.timeDependent() {
				m.evaluate()
			}
		}
		if m.cfg.KnownPeersFile != "" && time.Since(lastPeersWrite) >= peersWriteEvery {
			m.mu.Lock()
			dirty := m.peersDirt
			m.peersDirt = false
			m.mu.Unlock()
			if dirty {
				lastPeersWrite = time.Now()
				if err := m.saveKnownPeers(); err != nil {
					m.log.Warn("save known peers", "err", err)
				}
			}
		}
	}
}

// timeDependent reports whether the decision may change with time alone.
func (m *Mesh) timeDependent() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, ms := range m.members {
		if !ms.settleUntil.IsZero() {
			if now.Before(ms.settleUntil) {
				continue // still settling; re-evaluated when it ends
			}
			ms.settleUntil = time.Time{}
			return true // settling just ended
		}
	}
	return len(m.decision.HeldDown) > 0 || m.demStale || len(m.pendDem) > 0 ||
		(m.cfg.Failback == FailbackSticky && (now.Sub(m.demAt) >= demotionsRefresh || now.Before(m.demAt)))
}

func (m *Mesh) freezeDetected(gap time.Duration) {
	gap = gap.Round(time.Millisecond)
	m.log.Warn("resumed after freeze", "gap", gap)
	m.mu.Lock()
	m.stats.Freezes++
	m.eventLocked(EventFreeze, m.name, fmt.Sprintf("resumed after freeze of %s", gap))
	m.mu.Unlock()
	m.ResetHealthySince()
}

// nodeStatesLocked builds the decision input from the member table.
func (m *Mesh) nodeStatesLocked() []NodeState {
	out := make([]NodeState, 0, len(m.members))
	for _, ms := range m.members {
		ns := NodeState{
			Name:         ms.name,
			Rank:         ms.meta.Rank,
			Status:       ms.status,
			Health:       ms.meta.Health,
			HealthySince: ms.meta.HealthySince,
			Settling:     m.now().Before(ms.settleUntil),
		}
		if !ms.metaOK {
			ns.Rank = math.MaxInt32
			ns.Health = ""
		}
		out = append(out, ns)
	}
	return out
}

func (m *Mesh) decideLocked(now time.Time) Decision {
	return Decide(DecisionInput{
		Nodes:        m.nodeStatesLocked(),
		Demotions:    m.demCache,
		Failback:     m.cfg.Failback,
		PreemptDelay: m.cfg.PreemptDelay,
		Now:          now,
	})
}

// evaluate applies pending demotions, refreshes the demotion cache if
// needed, recomputes the decision and records what changed.
func (m *Mesh) evaluate() {
	now := m.now()
	m.mu.Lock()
	if m.starting {
		// No decision before the initial join: a starting node would
		// otherwise briefly see itself alone and claim the active role.
		m.mu.Unlock()
		return
	}
	pend := m.pendDem
	m.pendDem = nil
	refresh := m.demStale || len(pend) > 0 ||
		(m.cfg.Failback == FailbackSticky && (now.Sub(m.demAt) >= demotionsRefresh || now.Before(m.demAt)))
	cache := m.demCache
	m.mu.Unlock()

	if len(pend) > 0 {
		demoted := make(map[string]bool, len(cache))
		for _, d := range cache {
			demoted[d.Node] = true
		}
		for _, name := range pend {
			if demoted[name] {
				continue
			}
			demoted[name] = true
			if err := m.cfg.Demotions.Demote(name, now); err != nil {
				m.log.Warn("demote", "member", name, "err", err)
				continue
			}
			m.log.Info("member demoted", "member", name)
			m.mu.Lock()
			m.eventLocked(EventDemote, name, name+" failed: moved to the end of the order")
			m.mu.Unlock()
		}
	}
	var dems []Demotion
	var demErr error
	if refresh {
		dems, demErr = m.cfg.Demotions.Demotions()
		if demErr != nil {
			m.log.Warn("read demotions", "err", demErr)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if refresh && demErr == nil {
		m.demCache = dems
		m.demStale = false
		m.demAt = now
	}
	prev := m.decision
	next := m.decideLocked(now)
	m.decision = next
	changed := false
	for _, name := range next.Order {
		if prev.Roles[name] != next.Roles[name] {
			changed = true
			m.stats.RoleChanges++
			from := prev.Roles[name]
			if from == "" {
				from = "none"
			}
			m.eventLocked(EventRole, name, fmt.Sprintf("%s: %s -> %s", name, from, next.Roles[name]))
		}
	}
	if len(prev.Order) != len(next.Order) {
		changed = true
	} else {
		for i := range prev.Order {
			if prev.Order[i] != next.Order[i] {
				changed = true
				break
			}
		}
	}
	if prev.Active != next.Active {
		changed = true
		reason := m.whyNotActiveLocked(prev.Active, next)
		detail := fmt.Sprintf("active %s -> %s", orNone(prev.Active), orNone(next.Active))
		if reason != "" {
			detail += ": " + reason
		}
		if prev.Active != "" {
			m.stats.Failovers++
		}
		m.eventLocked(EventFailover, next.Active, detail)
		m.log.Info("active changed", "from", prev.Active, "to", next.Active, "reason", reason)
	}
	if changed {
		m.notifyLocked()
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// whyNotActiveLocked explains why old is no longer active in d.
func (m *Mesh) whyNotActiveLocked(old string, d Decision) string {
	if old == "" {
		return ""
	}
	ms, ok := m.members[old]
	switch {
	case !ok:
		return old + " unknown"
	case ms.status != StatusAlive:
		return fmt.Sprintf("%s %s", old, ms.status)
	case !ms.metaOK:
		return old + " has undecodable meta"
	case ms.meta.Health != HealthOK:
		return fmt.Sprintf("%s health %s", old, ms.meta.Health)
	}
	for _, n := range d.Order {
		if n == old {
			break
		}
		if n == d.Active {
			return fmt.Sprintf("%s precedes %s in the order", d.Active, old)
		}
	}
	return fmt.Sprintf("%s preferred", d.Active)
}

// publishLoop sends local meta updates through memberlist, one at a time.
func (m *Mesh) publishLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.publish:
		}
		ml, ok := m.running()
		if !ok {
			continue
		}
		if err := ml.UpdateNode(publishTimeout); err != nil {
			m.log.Debug("publish meta", "err", err)
		}
	}
}
