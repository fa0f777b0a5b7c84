package mesh

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/hashicorp/memberlist"
)

// delegate adapts Mesh to memberlist's Delegate, EventDelegate and
// ConflictDelegate. memberlist calls the event methods with its node lock
// held, so they only touch Mesh state under m.mu and never call back into
// memberlist.
type delegate struct {
	m *Mesh
}

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

// NodeMeta encodes the local metadata (always within limit for limit >= 512).
func (d *delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	b := encodeMeta(d.m.local)
	d.m.mu.Unlock()
	if len(b) > limit {
		return nil
	}
	return b
}

// NotifyMsg copies the message into the bounded inbox; it never blocks.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	cp := make([]byte, len(b))
	copy(cp, b)
	select {
	case d.m.inbox <- cp:
	default:
		d.m.mu.Lock()
		d.m.stats.DroppedMessages++
		d.m.mu.Unlock()
	}
}

// GetBroadcasts hands out queued application broadcasts.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.bq.GetBroadcasts(overhead, limit)
}

// LocalState is unused (no extra push/pull state).
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState is unused.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// syncPushers is the expected number of members that push their state to
// a member that came back.
const syncPushers = 3

// aliveLocked counts alive members including this node. m.mu must be held.
func (m *Mesh) aliveLocked() int {
	n := 0
	for _, ms := range m.members {
		if ms.status == StatusAlive || ms.status == StatusSuspect {
			n++
		}
	}
	return n
}

// memberFor returns (creating) the state for node n. m.mu must be held.
func (m *Mesh) memberFor(n *memberlist.Node) (*memberState, bool) {
	ms, ok := m.members[n.Name]
	if !ok {
		ms = &memberState{name: n.Name, status: StatusDead, meta: Meta{Rank: math.MaxInt32}}
		m.members[n.Name] = ms
	}
	ms.addr = n.Address()
	return ms, ok
}

// updateMetaFromNodeLocked decodes n's meta into ms. m.mu must be held.
func (m *Mesh) updateMetaFromNodeLocked(ms *memberState, n *memberlist.Node) {
	if n.Name == m.name {
		return // our own meta is authoritative locally
	}
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		ms.metaOK = false
		if ms.meta.Health != "" {
			m.eventLocked(EventMeta, ms.name, fmt.Sprintf("%s: undecodable meta: %v", ms.name, err))
		}
		if ms.wasOK {
			ms.wasOK = false
			m.failedLocked(ms.name)
		}
		ms.meta.Health = ""
		if !ms.metaErrLog {
			ms.metaErrLog = true
			m.log.Warn("undecodable member meta; treating member as unhealthy", "member", n.Name, "err", err)
		}
		return
	}
	m.applyMetaLocked(ms, meta)
}

// NotifyJoin records a member that joined or came back.
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, known := m.memberFor(n)
	m.updateMetaFromNodeLocked(ms, n)
	ms.leaveIntent = ms.meta.Health == HealthLeaving && n.Name != m.name
	detail := fmt.Sprintf("%s joined at %s", n.Name, ms.addr)
	if known && ms.status != StatusAlive {
		detail = fmt.Sprintf("%s is back at %s (was %s)", n.Name, ms.addr, ms.status)
		if n.Name != m.name && ms.meta.HealthySince.Before(ms.goneSince) {
			// Same process as before it was gone (frozen or cut off): it
			// may still publish its old HealthySince for a moment.
			ms.settleUntil = m.now().Add(m.cfg.SettleTime)
			detail += fmt.Sprintf("; not a candidate for %s while it settles", m.cfg.SettleTime)
		}
		if n.Name != m.name && rand.Float64() < syncPushers/float64(max(1, m.aliveLocked())) {
			// A restarted node may know nobody yet (it learned that it
			// was considered dead from gossip, not from a push/pull):
			// give it our full state now instead of at the next
			// push/pull interval. About syncPushers nodes do this, not
			// all (a healed partition would cause N^2 push/pulls).
			m.syncQ[ms.addr] = true
			select {
			case m.syncSig <- struct{}{}:
			default:
			}
		}
	}
	if n.Name != m.name || ms.status != StatusAlive {
		if n.Name != m.name {
			m.log.Info("member joined", "member", n.Name, "addr", ms.addr)
		}
		m.setStatusLocked(ms, StatusAlive, detail)
	}
	m.notifyLocked()
	m.wakeUp()
}

// NotifyLeave records a member that left (leave intent seen) or died.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, _ := m.memberFor(n)
	if n.Name == m.name {
		m.setStatusLocked(ms, StatusLeft, n.Name+" left")
	} else if ms.leaveIntent || ms.meta.Health == HealthLeaving {
		m.log.Info("member left", "member", n.Name)
		m.setStatusLocked(ms, StatusLeft, n.Name+" left gracefully")
	} else {
		m.log.Warn("member failed", "member", n.Name, "addr", ms.addr)
		m.setStatusLocked(ms, StatusDead, n.Name+" declared dead")
	}
	m.notifyLocked()
	m.wakeUp()
}

// NotifyUpdate records a metadata change.
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, _ := m.memberFor(n)
	m.updateMetaFromNodeLocked(ms, n)
	m.notifyLocked()
	m.wakeUp()
}

// NotifyConflict is called when a node claims an existing name at another
// address. If it is our name and we are still starting, Start fails with
// ErrDuplicateName; otherwise it is logged and recorded.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Conflicts++
	detail := fmt.Sprintf("name %q claimed by %s and %s", existing.Name, existing.Address(), other.Address())
	if existing.Name == m.name && m.starting && m.conflict == "" {
		m.conflict = other.Address()
	}
	m.eventLocked(EventConflict, existing.Name, detail)
	m.log.Error("node name conflict", "member", existing.Name, "existing", existing.Address(), "other", other.Address())
}
