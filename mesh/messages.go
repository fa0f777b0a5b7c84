package mesh

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// maxBroadcastSize is the largest envelope sent through gossip; larger
// broadcasts go to each peer over TCP. memberlist packs broadcasts into
// UDP packets of UDPBufferSize (1400 bytes) minus headers and encryption
// overhead; 1100 leaves ample room.
const maxBroadcastSize = 1100

// broadcast is a queued gossip message.
type broadcast struct{ msg []byte }

var _ memberlist.Broadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *broadcast) Message() []byte                       { return b.msg }
func (b *broadcast) Finished()                             {}

func randomID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return binary.BigEndian.Uint64(b[:])
}

// Broadcast sends payload to every other node, best effort. Small payloads
// are gossiped (and re-gossiped by receivers, deduplicated by id); payloads
// too big for a packet are sent to each alive peer over TCP by a mesh
// goroutine. Never blocks for long. No-op when the mesh is not running.
func (m *Mesh) Broadcast(payload []byte) {
	ml, ok := m.running()
	if !ok {
		return
	}
	id := randomID()
	env := encodeEnvelope(msgBroadcast, m.name, id, payload)
	if len(env) <= maxBroadcastSize {
		m.markSeen(id)
		// Fast path: one UDP packet to every peer right away, so a write
		// reaches the mesh in a round trip instead of a gossip interval.
		// The gossip queue is the repair path for packets lost here;
		// receivers drop the duplicate by its id.
		for _, n := range ml.Members() {
			if n.Name != m.name {
				if err := ml.SendBestEffort(n, env); err != nil {
					m.log.Debug("broadcast (direct)", "to", n.Name, "err", err)
				}
			}
		}
		m.bq.QueueBroadcast(&broadcast{msg: env})
		return
	}
	direct := encodeEnvelope(msgApp, m.name, 0, payload)
	nodes := ml.Members()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for _, n := range nodes {
			if n.Name == m.name {
				continue
			}
			select {
			case <-m.stop:
				return
			default:
			}
			if err := ml.SendReliable(n, direct); err != nil {
				m.log.Debug("broadcast (direct)", "to", n.Name, "err", err)
			}
		}
	}()
}

// markSeen remembers a broadcast id; it reports whether it was new.
func (m *Mesh) markSeen(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[id]; ok {
		return false
	}
	if len(m.seenRing) < seenBroadcasts {
		m.seenRing = append(m.seenRing, id)
	} else {
		delete(m.seen, m.seenRing[m.seenNext])
		m.seenRing[m.seenNext] = id
		m.seenNext = (m.seenNext + 1) % seenBroadcasts
	}
	m.seen[id] = struct{}{}
	return true
}

// findNode returns the memberlist node for name if it is alive.
func findNode(ml *memberlist.Memberlist, name string) *memberlist.Node {
	for _, n := range ml.Members() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// SendTo sends payload to node reliably (TCP). It blocks until the message
// is written or the profile's TCP timeout passes. Sending to this node's
// own name delivers to the local handler.
func (m *Mesh) SendTo(node string, payload []byte) error {
	ml, ok := m.running()
	if !ok {
		return ErrNotRunning
	}
	env := encodeEnvelope(msgApp, m.name, 0, payload)
	if node == m.name {
		select {
		case m.inbox <- env:
			return nil
		case <-m.stop:
			return ErrNotRunning
		}
	}
	n := findNode(ml, node)
	if n == nil {
		return fmt.Errorf("send to %q: %w", node, ErrUnknownNode)
	}
	if err := ml.SendReliable(n, env); err != nil {
		return fmt.Errorf("send to %q: %w", node, err)
	}
	return nil
}

// dispatchLoop drains the inbox: application messages go to the handler,
// control messages are handled here.
func (m *Mesh) dispatchLoop() {
	defer m.wg.Done()
	for {
		var raw []byte
		select {
		case <-m.stop:
			return
		case raw = <-m.inbox:
		}
		env, err := decodeEnvelope(raw)
		if err != nil {
			m.log.Debug("dropping message", "err", err)
			m.mu.Lock()
			m.stats.DroppedMessages++
			m.mu.Unlock()
			continue
		}
		switch env.typ {
		case msgApp:
			m.deliver(env.from, env.body)
		case msgBroadcast:
			if env.from == m.name || !m.markSeen(env.id) {
				continue
			}
			// Re-gossip so that the message reaches nodes the sender's
			// limited retransmissions did not.
			m.bq.QueueBroadcast(&broadcast{msg: raw})
			m.deliver(env.from, env.body)
		case msgLeave:
			m.leaveIntent(env.from)
		case msgKeyReq:
			m.handleKeyRequest(env.from, env.body)
		case msgKeyResp:
			m.handleKeyResponse(env.from, env.body)
		}
	}
}

func (m *Mesh) deliver(from string, payload []byte) {
	m.mu.Lock()
	h := m.handler
	m.mu.Unlock()
	if h != nil {
		h(from, payload)
	}
}

// leaveIntent marks from as leaving; if it was declared dead moments ago,
// the leave intent arrived late and the member is reclassified as left.
func (m *Mesh) leaveIntent(from string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, ok := m.members[from]
	if !ok || from == m.name {
		return
	}
	ms.leaveIntent = true
	if ms.status == StatusDead && m.now().Sub(ms.since) < leaveIntentGrace {
		m.setStatusLocked(ms, StatusLeft, from+" left gracefully")
		m.notifyLocked()
		m.wakeUp()
	}
}
