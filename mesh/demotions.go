package mesh

import (
	"errors"
	"sort"
	"sync"
	"time"
)

// Demotion records that Node failed at At (sticky failback mode).
type Demotion struct {
	Node string
	At   time.Time
}

// Demotions is the replicated store of sticky-mode demotions. Implementations
// must be safe for concurrent use and must not block long (they are called
// from the mesh's decision goroutine). Demote may be called by every node for
// the same failure; a later call for an already demoted node must keep the
// node demoted (last writer wins on At is fine).
type Demotions interface {
	// Demotions returns all current demotions, in any order.
	Demotions() ([]Demotion, error)
	// Demote records a demotion of node at time at.
	Demote(node string, at time.Time) error
	// ClearDemotions removes all demotions (restores the static order).
	ClearDemotions() error
}

// MemDemotions is an in-memory Demotions, the default when Config.Demotions
// is nil. It is local to one node (not replicated). Safe for concurrent use.
type MemDemotions struct {
	mu sync.Mutex
	m  map[string]time.Time
}

var _ Demotions = (*MemDemotions)(nil)

// NewMemDemotions returns an empty in-memory Demotions.
func NewMemDemotions() *MemDemotions {
	return &MemDemotions{m: make(map[string]time.Time)}
}

// Demotions returns the demotions sorted by time, then node.
func (d *MemDemotions) Demotions() ([]Demotion, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Demotion, 0, len(d.m))
	for n, at := range d.m {
		out = append(out, Demotion{Node: n, At: at})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Node < out[j].Node
	})
	return out, nil
}

// Demote records node as demoted at at (the later time wins).
func (d *MemDemotions) Demote(node string, at time.Time) error {
	if node == "" {
		return errors.New("demote: empty node name")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.m[node]; !ok || at.After(old) {
		d.m[node] = at
	}
	return nil
}

// ClearDemotions removes all demotions.
func (d *MemDemotions) ClearDemotions() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.m)
	return nil
}
