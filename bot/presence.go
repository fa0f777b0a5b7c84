package bot

import "strings"

// presence is the bot's own model of who is in which channel, built from
// NAMES replies, JOIN, PART, QUIT, KICK and NICK. It is not safe for
// concurrent use: the bot's event loop owns it.
type presence struct {
	chans    map[string]map[string]string // folded channel -> folded nick -> nick
	accounts map[string]string            // folded nick -> services account
}

func newPresence() *presence {
	return &presence{chans: map[string]map[string]string{}, accounts: map[string]string{}}
}

// reset forgets everything (on disconnect).
func (p *presence) reset() {
	p.chans = map[string]map[string]string{}
	p.accounts = map[string]string{}
}

// selfJoined starts a fresh member list for ch after our own JOIN.
func (p *presence) selfJoined(ch, self string) {
	p.chans[ircLower(ch)] = map[string]string{ircLower(self): self}
}

// selfLeft forgets ch after our own PART or KICK.
func (p *presence) selfLeft(ch string) { delete(p.chans, ircLower(ch)) }

func (p *presence) join(ch, nick string) {
	m := p.chans[ircLower(ch)]
	if m == nil {
		m = map[string]string{}
		p.chans[ircLower(ch)] = m
	}
	m[ircLower(nick)] = nick
}

func (p *presence) part(ch, nick string) {
	if m := p.chans[ircLower(ch)]; m != nil {
		delete(m, ircLower(nick))
	}
}

func (p *presence) quit(nick string) {
	f := ircLower(nick)
	for _, m := range p.chans {
		delete(m, f)
	}
	delete(p.accounts, f)
}

func (p *presence) rename(oldNick, newNick string) {
	of, nf := ircLower(oldNick), ircLower(newNick)
	for _, m := range p.chans {
		if _, ok := m[of]; ok {
			delete(m, of)
			m[nf] = newNick
		}
	}
	if a, ok := p.accounts[of]; ok {
		delete(p.accounts, of)
		p.accounts[nf] = a
	}
}

// names adds the nicks of a RPL_NAMREPLY line (with optional status
// prefixes and userhost-in-names suffixes).
func (p *presence) names(ch, list string) {
	for _, n := range strings.Fields(list) {
		n = strings.TrimLeft(n, "~&@%+!")
		if i := strings.IndexByte(n, '!'); i >= 0 {
			n = n[:i]
		}
		if n != "" {
			p.join(ch, n)
		}
	}
}

func (p *presence) setAccount(nick, account string) {
	if account == "" || account == "*" || account == "0" {
		delete(p.accounts, ircLower(nick))
		return
	}
	p.accounts[ircLower(nick)] = account
}

func (p *presence) account(nick string) string { return p.accounts[ircLower(nick)] }

// present reports whether nick is in ch.
func (p *presence) present(ch, nick string) bool {
	if nick == "" {
		return false
	}
	_, ok := p.chans[ircLower(ch)][ircLower(nick)]
	return ok
}

// inChannel reports whether we have a member list for ch (we are in it).
func (p *presence) inChannel(ch string) bool {
	_, ok := p.chans[ircLower(ch)]
	return ok
}

// members returns the nicks in ch (unordered).
func (p *presence) members(ch string) []string {
	var out []string
	for _, n := range p.chans[ircLower(ch)] {
		out = append(out, n)
	}
	return out
}
