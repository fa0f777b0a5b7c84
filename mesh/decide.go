package mesh

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Failback modes for Config.Failback and DecisionInput.Failback.
const (
	// FailbackPreempt: a recovered higher-ranked node takes the active role
	// back (after PreemptDelay). Demotions are ignored.
	FailbackPreempt = "preempt"
	// FailbackSticky: a node that failed is moved to the end of the order
	// until the demotions are cleared (Reorder).
	FailbackSticky = "sticky"
)

// NodeState is the part of a member that the decision depends on.
type NodeState struct {
	Name         string
	Rank         int
	Status       Status
	Health       Health
	HealthySince time.Time
	// Settling is true for a member that just came back from dead or left
	// and may not know yet that it was gone (see Config.SettleTime); it is
	// not a candidate meanwhile.
	Settling bool
}

// DecisionInput is everything Decide looks at. Decide does not modify it.
type DecisionInput struct {
	Nodes        []NodeState
	Demotions    []Demotion
	Failback     string // FailbackPreempt or FailbackSticky; anything else behaves as preempt
	PreemptDelay time.Duration
	Now          time.Time
}

// Decision is the result of Decide.
type Decision struct {
	Active   string          // "" if there is no candidate
	Order    []string        // effective order of all nodes
	Roles    map[string]Role // role of every node in Order
	HeldDown []string        // candidates that are held down by the preempt hold-down, in effective order
}

// Decide computes who is active. It is a pure function of its input, so
// every node that sees the same members, metadata and demotions computes the
// same decision.
//
// Rules:
//
//   - Static order: Rank ascending, ties broken by Name.
//   - Effective order: in sticky mode, nodes that have a Demotion are removed
//     from their place and appended at the end, ordered by Demotion.At
//     ascending (the most recent failure is last; ties by name; if a node has
//     several demotions the latest counts). In preempt mode demotions are
//     ignored.
//   - Candidate: Status alive, Health ok and not Settling.
//   - Preempt hold-down (both modes): candidate X is held down iff
//     Now-X.HealthySince < PreemptDelay and some other candidate Y has
//     Y.HealthySince <= X.HealthySince-PreemptDelay. A zero HealthySince
//     means "healthy since forever". Nodes that became healthy together do
//     not hold each other down; a node that recovers while others have been
//     serving waits PreemptDelay.
//   - Active: the first candidate in effective order that is not held down;
//     if every candidate is held down, the first candidate. (The candidate
//     with the earliest HealthySince is never held down, so this fallback
//     is only a safety net.)
//   - Roles: RoleActive for the active node, RoleStandby for the other
//     candidates, RoleUnhealthy for everything else.
//
// Demotions of nodes that are not in Nodes are ignored.
func Decide(in DecisionInput) Decision {
	nodes := make([]NodeState, len(in.Nodes))
	copy(nodes, in.Nodes)
	slices.SortStableFunc(nodes, func(a, b NodeState) int {
		if c := cmp.Compare(a.Rank, b.Rank); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})

	if in.Failback == FailbackSticky && len(in.Demotions) > 0 {
		demotedAt := make(map[string]time.Time, len(in.Demotions))
		for _, d := range in.Demotions {
			if at, ok := demotedAt[d.Node]; !ok || d.At.After(at) {
				demotedAt[d.Node] = d.At
			}
		}
		kept := make([]NodeState, 0, len(nodes))
		var demoted []NodeState
		for _, n := range nodes {
			if _, ok := demotedAt[n.Name]; ok {
				demoted = append(demoted, n)
			} else {
				kept = append(kept, n)
			}
		}
		slices.SortStableFunc(demoted, func(a, b NodeState) int {
			if c := demotedAt[a.Name].Compare(demotedAt[b.Name]); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		nodes = append(kept, demoted...)
	}

	d := Decision{
		Order: make([]string, len(nodes)),
		Roles: make(map[string]Role, len(nodes)),
	}
	var cands []NodeState
	for i, n := range nodes {
		d.Order[i] = n.Name
		d.Roles[n.Name] = RoleUnhealthy
		if n.Status == StatusAlive && n.Health == HealthOK && !n.Settling {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return d
	}

	// Y exists iff the earliest HealthySince among the other candidates is
	// <= X.HealthySince-PreemptDelay; keep the two earliest (a zero time
	// sorts first) so that "other than X" is O(1).
	first, second := -1, -1
	for i, c := range cands {
		switch {
		case first < 0 || c.HealthySince.Before(cands[first].HealthySince):
			first, second = i, first
		case second < 0 || c.HealthySince.Before(cands[second].HealthySince):
			second = i
		}
	}
	heldDown := func(i int) bool {
		x := cands[i]
		if in.PreemptDelay <= 0 || x.HealthySince.IsZero() {
			return false
		}
		if in.Now.Sub(x.HealthySince) >= in.PreemptDelay {
			return false
		}
		other := first
		if other == i {
			other = second
		}
		if other < 0 {
			return false
		}
		return !cands[other].HealthySince.After(x.HealthySince.Add(-in.PreemptDelay))
	}
	active := ""
	for i, c := range cands {
		if heldDown(i) {
			d.HeldDown = append(d.HeldDown, c.Name)
			continue
		}
		if active == "" {
			active = c.Name
		}
	}
	if active == "" {
		active = cands[0].Name
	}
	d.Active = active
	for _, c := range cands {
		d.Roles[c.Name] = RoleStandby
	}
	d.Roles[active] = RoleActive
	return d
}
