package bot

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Reply wording of the Encyclopedia plugin (ubuntu-bots), kept verbatim.
const (
	msgNotFound       = "Factoid %s not found"
	msgNotIntelligent = "I am only a bot, please don't think I'm intelligent :)"
	msgForwarded      = "Your edit request has been forwarded to %s.  Thank you for your attention to detail"
	msgRelay          = "In %s, %s said: %s"
	msgAlreadyMeans   = "But %s already means something else!"
	msgRememberAdd    = "I'll remember that, %s"
	msgRememberEdit   = "I'll remember that %s"
	msgKnowNothing    = "I know nothing about %s yet, %s"
	msgForget         = "I'll forget that, %s"
	msgKnewNothing    = "I knew nothing about %s at all, %s"
	msgNotDeleted     = "Factoid %s wasn't deleted yet, %s"
	msgRemember       = "I suddenly remember %s again, %s"
	msgNothingChanged = "Nothing changed there"
	msgAliasLoop      = "<reply> Error: infinite <alias> loop detected"
	msgAliasUnres     = "<reply> Error: unresolvable <alias> to %s"
	msgAliasConfirm   = "You are editing an alias. Please repeat the edit command within the next 10 seconds to confirm"
	msgAliasMissing   = "Factoid '%s' does not exist"
	msgPrivateHint    = "(In the future, please use a private message to investigate) "
	msgSuccess        = "The operation succeeded."
	// msgReadOnly is meshbot's own: copies other than the primary do not
	// accept edits from IRC.
	msgReadOnly = "Sorry, I'm a read-only copy of the factoid database; please make edits with %s"
)

const (
	repeatWindow  = 30 * time.Second // the plugin's repeat filter window
	aliasConfirm  = 10 * time.Second // the plugin's alias edit confirmation window
	maxAliasDepth = 10
	dateLayout    = "2006-01-02 15:04:05" // str(datetime) up to the '.'
)

// outMsg is one line to send.
type outMsg struct {
	target, text string
}

// msgCtx describes the message a command came from.
type msgCtx struct {
	Nick, Hostmask, Account string
	Channel                 string // "" for private
	Raw                     string // original message text
	BotNick                 string
}

func (m msgCtx) origTarget() string {
	if m.Channel == "" {
		return m.Nick
	}
	return m.Channel
}

// factoids executes parsed commands against the Store. It is owned by the
// bot's event loop and is not safe for concurrent use.
type factoids struct {
	store       Store
	now         func() time.Time
	relay       string
	botChannel  string
	isPrimary   func() bool
	primaryNick func() string
	onReorder   func(by string) error
	edits       map[string]time.Time // alias edit confirmations
	cache       map[[2]string]time.Time
	onDBError   func(error)
}

func newFactoids(cfg *Config, onDBError func(error)) *factoids {
	return &factoids{
		store: cfg.Store, now: cfg.Now, relay: cfg.RelayChannel, botChannel: cfg.BotChannel,
		isPrimary: cfg.IsPrimary, primaryNick: cfg.PrimaryNick, onReorder: cfg.OnReorder,
		edits: map[string]time.Time{}, cache: map[[2]string]time.Time{}, onDBError: onDBError,
	}
}

// run executes cmd and returns the lines to send (after the repeat filter).
func (f *factoids) run(cmd Command, m msgCtx) []outMsg {
	var out []outMsg
	f.exec(cmd, m, func(target, text string) { out = f.queue(out, target, text) })
	return out
}

// errorReply is Supybot's irc.error: "nick: Error: ..." in a channel.
func errorReply(m msgCtx, text string) outMsg {
	if m.Channel == "" {
		return outMsg{m.Nick, "Error: " + text}
	}
	return outMsg{m.Channel, m.Nick + ": Error: " + text}
}

func (f *factoids) exec(cmd Command, m msgCtx, send func(target, text string)) {
	reply := func(s string) { send(m.origTarget(), s) }
	if cmd.Kind == KindReorder {
		if m.Channel == "" || !nickEqual(m.Channel, f.botChannel) || !f.editor(m) || f.onReorder == nil {
			return
		}
		if err := f.onReorder(m.Nick); err != nil {
			e := errorReply(m, err.Error())
			send(e.target, e.text)
			return
		}
		reply(msgSuccess)
		return
	}
	if cmd.Kind.IsEdit() {
		if !f.editor(m) {
			if cmd.Kind == KindAdd {
				if i := strings.Index(cmd.Text, "is"); i > 15 {
					e := errorReply(m, msgNotIntelligent)
					send(e.target, e.text)
					return
				}
			}
			send(m.Nick, fmt.Sprintf(msgForwarded, f.relay))
			where := m.Channel
			if where == "" {
				where = m.BotNick
			}
			send(f.relay, fmt.Sprintf(msgRelay, where, m.Nick, m.Raw))
			return
		}
		if f.isPrimary != nil && !f.isPrimary() {
			p := ""
			if f.primaryNick != nil {
				p = f.primaryNick()
			}
			if p == "" {
				p = "the primary bot"
			}
			reply(fmt.Sprintf(msgReadOnly, p))
			return
		}
		if cmd.Err != "" {
			reply(cmd.Err)
			return
		}
		if r := f.edit(cmd, m); r != "" {
			reply(r)
		}
		return
	}
	switch cmd.Kind {
	case KindSearch:
		reply(f.search(cmd.Words))
	case KindLookup:
		lines, err := f.lookup(cmd, m)
		if err != nil {
			f.dbError(err)
			return
		}
		if len(lines) == 0 {
			if len(cmd.Name) > 15 {
				e := errorReply(m, msgNotIntelligent)
				send(e.target, e.text)
				return
			}
			reply(fmt.Sprintf(msgNotFound, cmd.Name))
			return
		}
		send(cmd.Target, cmd.RetMsg+lines[0])
		for _, l := range lines[1:] {
			send(cmd.Target, l)
		}
	}
}

func (f *factoids) dbError(err error) {
	if f.onDBError != nil {
		f.onDBError(err)
	}
}

func (f *factoids) editor(m msgCtx) bool {
	eds, err := f.store.Editors()
	if err != nil {
		f.dbError(err)
		return false
	}
	return IsEditor(eds, m.Hostmask, m.Account)
}

// queue is the plugin's repeat filter: the same line to the same target
// within 30 s is not repeated, and a line ending in a recent one gets
// "please see above" instead of the repetition.
func (f *factoids) queue(out []outMsg, target, msg string) []outMsg {
	now := f.now()
	for k, t := range f.cache {
		if t.Before(now.Add(-repeatWindow)) {
			delete(f.cache, k)
		}
	}
	for k := range f.cache {
		if !strings.EqualFold(k[0], target) {
			continue
		}
		old := k[1]
		if msg == old || strings.HasSuffix(old, msg) {
			return out
		}
		if strings.HasSuffix(msg, old) {
			msg = msg[:len(msg)-len(old)] + "please see above"
		}
	}
	f.cache[[2]string{target, msg}] = now
	return append(out, outMsg{target, msg})
}

// get returns the factoid or nil; forgotten factoids only if deleted.
func (f *factoids) get(name string, deleted bool) (*Factoid, error) {
	fa, err := f.store.GetFactoid(name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fa.Forgotten && !deleted {
		return nil, nil
	}
	if fa.Name == "" {
		fa.Name = name
	}
	return &fa, nil
}

type factoidSet struct {
	// indexes: 0 channel primary, 1 global primary, 2 channel secondary, 3 global secondary
	f [4]*Factoid
}

func (f *factoids) getSet(name, channel string, resolve bool) (factoidSet, error) {
	var s factoidSet
	names := [4]string{"", name, "", name + "-also"}
	if channel != "" {
		ch := strings.ToLower(channel)
		names[0] = name + "-" + ch
		names[2] = name + "-" + ch + "-also"
	}
	for i, n := range names {
		if n == "" {
			continue
		}
		fa, err := f.get(n, false)
		if err != nil {
			return s, err
		}
		if resolve && fa != nil {
			if fa, err = f.resolveAlias(channel, fa, 0); err != nil {
				return s, err
			}
		}
		s.f[i] = fa
	}
	return s, nil
}

func isAlias(v string) bool { return strings.HasPrefix(strings.ToLower(v), "<alias>") }

func (f *factoids) resolveAlias(channel string, fa *Factoid, loop int) (*Factoid, error) {
	if loop >= maxAliasDepth {
		return &Factoid{Value: msgAliasLoop}, nil
	}
	if fa == nil || !isAlias(fa.Value) {
		return fa, nil
	}
	target := strings.ToLower(strings.TrimSpace(fa.Value[len("<alias>"):]))
	cands := []string{target}
	if channel != "" {
		cands = []string{target + "-" + strings.ToLower(channel), target}
	}
	for _, n := range cands {
		nf, err := f.get(n, false)
		if err != nil {
			return nil, err
		}
		if nf != nil {
			return f.resolveAlias(channel, nf, loop+1)
		}
	}
	return &Factoid{Value: fmt.Sprintf(msgAliasUnres, target)}, nil
}

func nickOf(mask string) string {
	if i := strings.IndexByte(mask, '!'); i >= 0 {
		return mask[:i]
	}
	return mask
}

func (f *factoids) subst(s string, m msgCtx) string {
	r := strings.NewReplacer("$chan", m.Channel, "$who", m.Nick, "$nick", m.Nick)
	return r.Replace(s)
}

func (f *factoids) lookup(cmd Command, m msgCtx) ([]string, error) {
	if cmd.Raw {
		fa, err := f.get(cmd.Name, false)
		if err != nil || fa == nil {
			return nil, err
		}
		return []string{fa.Value}, nil
	}
	set, err := f.getSet(cmd.Name, m.Channel, !cmd.Info)
	if err != nil {
		return nil, err
	}
	var ret []string
	for _, group := range [][2]int{{0, 1}, {2, 3}} {
		secondary := group[0] == 2
		for _, i := range group {
			fa := set.f[i]
			if fa == nil {
				continue
			}
			val := fa.Value
			if cmd.Info {
				if val, err = f.info(fa); err != nil {
					return nil, err
				}
			} else if fa.Name != "" {
				if err := f.store.CountLookup(fa.Name); err != nil {
					f.dbError(err)
				}
			}
			switch {
			case strings.HasPrefix(val, "<reply>"):
				ret = append(ret, f.subst(strings.TrimSpace(val[len("<reply>"):]), m))
			case secondary:
				ret = append(ret, f.subst(strings.TrimSpace(val), m))
			default:
				n := fa.Name
				if j := strings.Index(n, "-#"); j >= 0 {
					n = n[:j]
				}
				ret = append(ret, n+" is "+f.subst(val, m))
			}
			if !cmd.Info {
				break
			}
		}
	}
	return ret, nil
}

// info is the plugin's factoid_info plus the popularity.
func (f *factoids) info(fa *Factoid) (string, error) {
	v := fa.Value
	if !isAlias(v) {
		var aliases []string
		res, err := f.store.SearchFactoids(fa.Name, 50)
		if err != nil {
			return "", err
		}
		for _, r := range res {
			if !r.Forgotten && isAlias(r.Value) && strings.EqualFold(strings.TrimSpace(r.Value[len("<alias>"):]), fa.Name) {
				aliases = append(aliases, r.Name)
			}
		}
		if len(aliases) > 0 {
			v = fmt.Sprintf("<reply> %s aliases: %s", fa.Name, strings.Join(aliases, ", "))
		} else {
			v = fmt.Sprintf("<reply> %s has no aliases", fa.Name)
		}
	}
	v += fmt.Sprintf(" - added by %s on %s", nickOf(fa.Author), fa.Added.UTC().Format(dateLayout))
	if fa.UpdatedBy != "" && !fa.Updated.IsZero() {
		v += fmt.Sprintf(" - last edited by %s on %s", nickOf(fa.UpdatedBy), fa.Updated.UTC().Format(dateLayout))
	}
	v += fmt.Sprintf(" - popularity %d", fa.Popularity)
	return v, nil
}

func (f *factoids) search(words string) string {
	res, err := f.store.SearchFactoids(words, 10)
	if err != nil {
		f.dbError(err)
		return "Found: "
	}
	names := make([]string, 0, len(res))
	for _, r := range res {
		n := r.Name
		if r.Forgotten {
			n += "*"
		}
		names = append(names, n)
	}
	if len(names) > 10 {
		names = names[:10]
	}
	return "Found: " + strings.Join(names, ", ")
}

// checkAliases is the plugin's check_aliases: it returns the value to store
// or a reply explaining why not.
func (f *factoids) checkAliases(name, value, channel string) (string, string, error) {
	now := f.now()
	for k, t := range f.edits {
		if t.Add(aliasConfirm).Before(now) {
			delete(f.edits, k)
		}
	}
	if !isAlias(value) {
		return value, "", nil
	}
	old, err := f.get(name, false)
	if err != nil {
		return "", "", err
	}
	if old != nil && isAlias(old.Value) {
		if _, ok := f.edits[name]; !ok {
			f.edits[name] = now
			return "", msgAliasConfirm, nil
		}
	}
	aliasName := strings.ToLower(strings.TrimSpace(value[len("<alias>"):]))
	target, err := f.get(aliasName, false)
	if err != nil {
		return "", "", err
	}
	if target == nil {
		return "", fmt.Sprintf(msgAliasMissing, aliasName), nil
	}
	res, err := f.resolveAlias(channel, &Factoid{Name: name, Value: value}, 0)
	if err != nil {
		return "", "", err
	}
	if res.Name == "" && strings.HasPrefix(res.Value, "<reply> Error") {
		return "", strings.TrimPrefix(res.Value, "<reply> "), nil
	}
	return "<alias> " + res.Name, "", nil
}

// edit performs an edit command (the caller checked editor and primary).
func (f *factoids) edit(cmd Command, m msgCtx) string {
	r, err := f.doEdit(cmd, m)
	if err != nil {
		f.dbError(err)
		return ""
	}
	return r
}

func (f *factoids) doEdit(cmd Command, m msgCtx) (string, error) {
	who := m.Nick
	switch cmd.Kind {
	case KindForget:
		fa, err := f.get(cmd.Name, false)
		if err != nil {
			return "", err
		}
		if fa == nil {
			return fmt.Sprintf(msgKnowNothing, cmd.Name, who), nil
		}
		if err := f.store.ForgetFactoid(cmd.Name, m.Hostmask); err != nil {
			return "", err
		}
		return fmt.Sprintf(msgForget, who), nil
	case KindUnforget:
		fa, err := f.get(cmd.Name, true)
		if err != nil {
			return "", err
		}
		if fa == nil {
			return fmt.Sprintf(msgKnewNothing, cmd.Name, who), nil
		}
		if !fa.Forgotten {
			return fmt.Sprintf(msgNotDeleted, fa.Name, who), nil
		}
		if err := f.store.UnforgetFactoid(cmd.Name, m.Hostmask); err != nil {
			return "", err
		}
		return fmt.Sprintf(msgRemember, fa.Name, who), nil
	case KindReplace, KindRegex:
		fa, err := f.get(cmd.Name, false)
		if err != nil {
			return "", err
		}
		if fa == nil {
			return fmt.Sprintf(msgKnowNothing, cmd.Name, who), nil
		}
		value := cmd.Value
		if cmd.Kind == KindRegex {
			nv, ok := regexReplaceFirst(cmd.Pattern, cmd.Replacement, fa.Value)
			if !ok {
				return "Malformed regex", nil
			}
			if nv == fa.Value {
				return msgNothingChanged, nil
			}
			value = nv
		}
		value, msg, err := f.checkAliases(cmd.Name, value, m.Channel)
		if err != nil || msg != "" {
			return msg, err
		}
		if _, err := f.store.SetFactoid(cmd.Name, value, m.Hostmask); err != nil {
			return "", err
		}
		return fmt.Sprintf(msgRememberEdit, who), nil
	case KindAdd:
		fa, err := f.get(cmd.Name, true)
		if err != nil {
			return "", err
		}
		if fa != nil {
			return fmt.Sprintf(msgAlreadyMeans, cmd.Name), nil
		}
		value, msg, err := f.checkAliases(cmd.Name, cmd.Value, m.Channel)
		if err != nil || msg != "" {
			return msg, err
		}
		if _, err := f.store.SetFactoid(cmd.Name, value, m.Hostmask); err != nil {
			return "", err
		}
		return fmt.Sprintf(msgRememberAdd, who), nil
	}
	return "", nil
}

var pyGroupRef = regexp.MustCompile(`\\(\d)`)

// regexReplaceFirst replaces the first match of pattern in s, like
// Python's re.sub(pattern, repl, s, 1): \1 in repl is a group reference,
// everything else is literal.
func regexReplaceFirst(pattern, repl, s string) (string, bool) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", false
	}
	loc := re.FindStringSubmatchIndex(s)
	if loc == nil {
		return s, true
	}
	tmpl := strings.ReplaceAll(repl, "$", "$$")
	tmpl = pyGroupRef.ReplaceAllString(tmpl, "$${$1}")
	dst := re.ExpandString(nil, tmpl, s, loc)
	return s[:loc[0]] + string(dst) + s[loc[1]:], true
}
