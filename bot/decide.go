package bot

// Action is what the bot does with a question in a channel.
type Action int

const (
	// Silent: another node answers.
	Silent Action = iota
	// AnswerNow: answer at once.
	AnswerNow
	// HedgeWait: wait up to cfg.Hedge for the higher-ranked bots in Decision.Hedge.
	HedgeWait
)

func (a Action) String() string {
	switch a {
	case Silent:
		return "silent"
	case AnswerNow:
		return "answer"
	case HedgeWait:
		return "hedge"
	}
	return "unknown"
}

// Decision is the result of Decide.
type Decision struct {
	Action Action
	Hedge  []string // nicks to wait for (HedgeWait only)
}

// DecideInput is everything the answer decision depends on.
type DecideInput struct {
	View      View
	SelfNick  string                 // our current IRC nick
	Present   func(nick string) bool // is nick in the channel the question was asked in
	Draining  bool                   // Handoff in progress
	Successor string                 // nick of the node taking over (Draining only)
}

// Decide is the pure "who answers" rule for a question in a channel:
//
//   - draining: answer at once while the successor is not in the channel,
//     else hedge on the successor;
//   - not active in the view: silent;
//   - active: H = nicks of peers ranked before self (not Leaving, not our own
//     nick) present in the channel; H empty => answer now, else hedge on H.
func Decide(in DecideInput) Decision {
	present := in.Present
	if present == nil {
		present = func(string) bool { return false }
	}
	if in.Draining {
		if in.Successor != "" && present(in.Successor) {
			// The successor may not see itself as active yet (gossip lag):
			// wait for its answer, answer only if none comes.
			return Decision{Action: HedgeWait, Hedge: []string{in.Successor}}
		}
		return Decision{Action: AnswerNow}
	}
	if in.View.Self == "" || in.View.Active != in.View.Self {
		return Decision{Action: Silent}
	}
	var h []string
	for _, p := range in.View.Order {
		if p.Name == in.View.Self {
			break
		}
		if p.Leaving || p.Nick == "" || nickEqual(p.Nick, in.SelfNick) {
			continue
		}
		if present(p.Nick) {
			h = append(h, p.Nick)
		}
	}
	if len(h) == 0 {
		return Decision{Action: AnswerNow}
	}
	return Decision{Action: HedgeWait, Hedge: h}
}

// successorNick is the nick of the node that takes over from self: the
// active node if it is not self, else the first alive, healthy, not leaving
// peer after self in the order.
func successorNick(v View, selfNick string) string {
	if v.Active != "" && v.Active != v.Self {
		for _, p := range v.Order {
			if p.Name == v.Active && p.Nick != "" && !nickEqual(p.Nick, selfNick) {
				return p.Nick
			}
		}
	}
	for _, p := range v.Order {
		if p.Name == v.Self || p.Leaving || !p.Alive || !p.Healthy || p.Nick == "" || nickEqual(p.Nick, selfNick) {
			continue
		}
		return p.Nick
	}
	return ""
}

// activeNick is the nick of the active node in v, "" if none or self.
func activeNick(v View) string {
	if v.Active == "" || v.Active == v.Self {
		return ""
	}
	for _, p := range v.Order {
		if p.Name == v.Active {
			return p.Nick
		}
	}
	return ""
}

// botNicks returns the nicks of all other peers in v.
func botNicks(v View, selfNick string) []string {
	var out []string
	for _, p := range v.Order {
		if p.Name == v.Self || p.Nick == "" || nickEqual(p.Nick, selfNick) {
			continue
		}
		out = append(out, p.Nick)
	}
	return out
}
