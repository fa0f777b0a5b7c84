package mesh

import "time"

// Event types recorded in the event ring.
const (
	EventJoin     = "join"     // a member joined or came back
	EventLeave    = "leave"    // a member left gracefully
	EventFail     = "fail"     // a member was declared dead
	EventHealth   = "health"   // a member's published health changed
	EventUpdate   = "update"   // a member's rank, IRC state or version changed
	EventRole     = "role"     // a member's role changed
	EventFailover = "failover" // the active node changed
	EventReorder  = "reorder"  // demotions were cleared
	EventDemote   = "demote"   // a member was demoted (sticky mode)
	EventConflict = "conflict" // a node name is claimed at two addresses
	EventKey      = "key"      // keyring change
	EventFreeze   = "freeze"   // this process was frozen and resumed
	EventMeta     = "meta"     // a member published undecodable metadata
)

// Event is one entry of the mesh's event log.
type Event struct {
	Time   time.Time
	Type   string // one of the Event* constants
	Node   string
	Detail string // human reason, e.g. "active ubotu -> ubotu2: ubotu dead"
}

// eventRingSize is how many events Events can return.
const eventRingSize = 1000

// eventRing is a fixed-size ring buffer. Not safe for concurrent use; the
// Mesh guards it with its mutex.
type eventRing struct {
	buf  []Event
	next int
	full bool
}

func (r *eventRing) add(e Event) {
	if r.buf == nil {
		r.buf = make([]Event, eventRingSize)
	}
	r.buf[r.next] = e
	r.next++
	if r.next == len(r.buf) {
		r.next = 0
		r.full = true
	}
}

// last returns up to n newest events, oldest first; n <= 0 means all.
func (r *eventRing) last(n int) []Event {
	size := r.next
	if r.full {
		size = len(r.buf)
	}
	if n <= 0 || n > size {
		n = size
	}
	out := make([]Event, n)
	for i := range n {
		idx := r.next - n + i
		if idx < 0 {
			idx += len(r.buf)
		}
		out[i] = r.buf[idx]
	}
	return out
}

// Stats are counters for metrics. Counts by status cover every member ever
// seen this run, including this node.
type Stats struct {
	Alive   int
	Suspect int
	Dead    int
	Left    int
	// Active is the current active node ("" if none).
	Active string
	// RoleChanges counts role changes of any member seen by this node.
	RoleChanges uint64
	// Failovers counts changes of the active node away from a non-empty one.
	Failovers uint64
	// Freezes counts detected process freezes (e.g. SIGSTOP).
	Freezes uint64
	// DroppedMessages counts incoming messages dropped (queue full or
	// malformed).
	DroppedMessages uint64
	// Conflicts counts name conflicts reported by memberlist.
	Conflicts uint64
}
