package bot

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lrstanley/girc"
)

// Kind is the kind of a parsed factoid command.
type Kind int

const (
	KindLookup   Kind = iota + 1 // !name, nick: name, private name, with > | tell targets
	KindSearch                   // !search words
	KindAdd                      // !name is value, !name is also value, !name is <alias> other
	KindReplace                  // !no, name is value
	KindRegex                    // !name =~ s/a/b/
	KindForget                   // !forget name
	KindUnforget                 // !unforget name
	KindReorder                  // @reorder (bot channel)
)

var kindNames = map[Kind]string{
	KindLookup: "lookup", KindSearch: "search", KindAdd: "add", KindReplace: "replace",
	KindRegex: "regex", KindForget: "forget", KindUnforget: "unforget", KindReorder: "reorder",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// IsEdit reports whether the command changes the database.
func (k Kind) IsEdit() bool {
	switch k {
	case KindAdd, KindReplace, KindRegex, KindForget, KindUnforget:
		return true
	}
	return false
}

// ParseContext is what parsing a message depends on.
type ParseContext struct {
	BotNick string // our current nick
	Prefix  string // command prefix, e.g. "!"
	Sender  string // nick of the sender
	Channel string // channel the message was sent to; "" for a private message
}

// Command is a parsed factoid command. Parsing is pure: no database access.
type Command struct {
	Kind  Kind
	Name  string // factoid name, lower case (lookup, edits)
	Value string // new value (add, replace)
	Words string // search words
	Info  bool   // "-name": show info
	Raw   bool   // "+name": show the raw value
	// Target is where the reply goes (channel or nick); RetMsg is put before
	// the first reply line ("nick: ", "<sender> wants you to know: ").
	Target string
	RetMsg string
	// Regex edit.
	Pattern     string
	Replacement string
	// Err is set when the command is recognised but malformed (e.g. a bad
	// regex): it is the reply to give, with no database access.
	Err string
	// Text is the addressed text (after prefix or nick removal).
	Text string
}

// maxPatternLen limits the size of a regex edit's pattern.
const maxPatternLen = 256

// commandSpec is one row of the command table. Rows are tried in order;
// the first whose Match accepts the (addressed, stripped) text wins.
type commandSpec struct {
	Name    string
	Aliases []string
	Help    string
	MinArgs int // minimum words after the command word (word-led commands; 0 for infix ones)
	Match   func(text, lower string) bool
	Parse   func(st *parseState) (Command, bool)
}

type parseState struct {
	ctx         ParseContext
	text, lower string
	info, raw   bool
	origTarget  string
}

// commandTable follows the dispatch order of the Encyclopedia plugin's
// doPrivmsg: search, then edits, then additions, then lookups.
var commandTable = []commandSpec{
	{
		Name: "search", Help: "search <words>: list factoids whose name or value contains the words", MinArgs: 1,
		Match: func(_, lower string) bool { return strings.HasPrefix(lower, "search ") },
		Parse: func(st *parseState) (Command, bool) {
			w := strings.TrimSpace(st.lower[len("search "):])
			if len(strings.Fields(w)) < 1 {
				return Command{}, false
			}
			return Command{Kind: KindSearch, Words: w, Target: st.origTarget}, true
		},
	},
	{
		Name: "forget", Help: "forget <name>: forget a factoid (editors)", MinArgs: 1,
		Match: func(_, lower string) bool { return strings.HasPrefix(lower, "forget ") },
		Parse: func(st *parseState) (Command, bool) {
			n := strings.ToLower(strings.TrimSpace(st.text[len("forget "):]))
			if n == "" {
				return Command{}, false
			}
			return Command{Kind: KindForget, Name: n, Target: st.origTarget}, true
		},
	},
	{
		Name: "unforget", Help: "unforget <name>: bring a forgotten factoid back (editors)", MinArgs: 1,
		Match: func(_, lower string) bool { return strings.HasPrefix(lower, "unforget ") },
		Parse: func(st *parseState) (Command, bool) {
			n := strings.ToLower(strings.TrimSpace(st.text[len("unforget "):]))
			if n == "" {
				return Command{}, false
			}
			return Command{Kind: KindUnforget, Name: n, Target: st.origTarget}, true
		},
	},
	{
		Name: "no", Aliases: []string{"no,"}, Help: "no, <name> is <value>: replace a factoid (editors)", MinArgs: 3,
		Match: func(text, lower string) bool {
			return strings.Contains(lower, " is ") && (strings.HasPrefix(text, "no ") || strings.HasPrefix(text, "no,"))
		},
		Parse: func(st *parseState) (Command, bool) {
			t := strings.TrimSpace(st.text[3:])
			p := strings.Index(strings.ToLower(t), " is ")
			if p < 0 {
				return Command{}, false
			}
			name, value := strings.ToLower(strings.TrimSpace(t[:p])), strings.TrimSpace(t[p+4:])
			if name == "" || value == "" {
				return Command{}, false
			}
			return Command{Kind: KindReplace, Name: name, Value: value, Target: st.origTarget}, true
		},
	},
	{
		Name: "=~", Aliases: []string{"~=", "is <sed>"}, Help: "<name> =~ s/regex/replacement/: edit a factoid (editors)",
		Match: func(text, lower string) bool {
			return strings.Contains(lower, "=~") || strings.Contains(lower, "~=") || strings.Contains(lower, "<sed>")
		},
		Parse: parseRegexEdit,
	},
	{
		Name: "is", Aliases: []string{"is also", "is <alias>"}, Help: "<name> is <value>: add a factoid (editors)",
		Match: func(text, lower string) bool {
			if strings.Contains(lower, "<alias>") && strings.Contains(lower, " is ") {
				return true
			}
			rest := strings.ReplaceAll(strings.ReplaceAll(text, "<reply>", ""), "<alias>", "")
			return strings.Contains(text, " is ") && !strings.Contains(text, "|") && !strings.Contains(rest, ">")
		},
		Parse: func(st *parseState) (Command, bool) {
			p := strings.Index(st.lower, " is ")
			if p < 0 {
				return Command{}, false
			}
			name, value := strings.ToLower(strings.TrimSpace(st.text[:p])), strings.TrimSpace(st.text[p+4:])
			if name == "" || value == "" {
				return Command{}, false
			}
			if strings.HasPrefix(value, "also ") || strings.HasPrefix(value, "also:") {
				name += "-also"
				value = strings.TrimSpace(value[5:])
				if value == "" {
					return Command{}, false
				}
			}
			return Command{Kind: KindAdd, Name: name, Value: value, Target: st.origTarget}, true
		},
	},
	{
		Name: "lookup", Aliases: []string{"tell", ">", "|"},
		Help:  "<name> [> nick | | nick], tell <nick> about <name>: show a factoid; -<name> info, +<name> raw",
		Match: func(string, string) bool { return true },
		Parse: func(st *parseState) (Command, bool) {
			text, target, retmsg := getTarget(st.ctx.Sender, st.text, st.origTarget)
			if strings.HasPrefix(text, "bug ") && text != "bug 1" {
				return Command{}, false
			}
			name := strings.ToLower(strings.TrimSpace(text))
			if name == "" {
				return Command{}, false
			}
			return Command{Kind: KindLookup, Name: name, Info: st.info, Raw: st.raw, Target: target, RetMsg: retmsg}, true
		},
	},
}

// Help returns one help line per command of the table.
func Help() []string {
	out := make([]string, 0, len(commandTable))
	for _, c := range commandTable {
		out = append(out, c.Help)
	}
	return out
}

// Parse turns a PRIVMSG text into a factoid command. It returns false when
// the message is not addressed to the bot or is not a command. It never
// panics on any input.
func Parse(text string, ctx ParseContext) (Command, bool) {
	text = cleanInput(text)
	if strings.ContainsRune(text, '\x01') { // CTCP
		return Command{}, false
	}
	if ctx.Prefix == "" {
		ctx.Prefix = "!"
	}
	if strings.EqualFold(strings.TrimSpace(text), "@reorder") {
		if ctx.Channel == "" {
			return Command{}, false
		}
		return Command{Kind: KindReorder, Target: ctx.Channel, Text: "@reorder"}, true
	}
	addr, ok := addressed(text, ctx)
	if !ok {
		return Command{}, false
	}
	st := &parseState{ctx: ctx, origTarget: ctx.Channel}
	if st.origTarget == "" {
		st.origTarget = ctx.Sender
	}
	// Strip leading non-alphanumerics; '-' asks for info, '+' for the raw value.
	i := 0
	for i < len(addr) {
		r, size := rune(addr[i]), 1
		if r >= 0x80 {
			r, size = decodeRune(addr[i:])
		}
		if isAlnum(r) {
			break
		}
		switch r {
		case '-':
			st.info = true
		case '+':
			st.raw = true
		}
		i += size
	}
	st.text = addr[i:]
	if st.text == "" {
		return Command{}, false
	}
	st.lower = strings.ToLower(st.text)
	for _, spec := range commandTable {
		if !spec.Match(st.text, st.lower) {
			continue
		}
		if spec.MinArgs > 0 && len(strings.Fields(st.text))-1 < spec.MinArgs {
			return Command{}, false
		}
		cmd, ok := spec.Parse(st)
		if !ok {
			return Command{}, false
		}
		cmd.Text = st.text
		return cmd, true
	}
	return Command{}, false
}

// addressed returns the part of text addressed to the bot, as the plugin's
// addressed(): "!text", "!nick text", "nick: text", "nick, text" in a
// channel; anything (optionally prefixed) in private.
func addressed(text string, ctx ParseContext) (string, bool) {
	if ctx.Channel == "" {
		t := strings.TrimSpace(text)
		t = strings.TrimPrefix(t, ctx.Prefix)
		t = strings.TrimSpace(t)
		return t, t != ""
	}
	text = strings.TrimSpace(text)
	nick := strings.ToLower(ctx.BotNick)
	lower := strings.ToLower(text)
	if nick != "" && lower == strings.ToLower(ctx.Prefix)+nick {
		return nick, true
	}
	if strings.HasPrefix(text, ctx.Prefix) {
		text = text[len(ctx.Prefix):]
		lower = strings.ToLower(text)
		if nick != "" && strings.HasPrefix(lower, nick) && (len(text) <= len(nick) || !isAlnumByte(text, len(nick))) {
			t2 := strings.TrimSpace(text[len(nick):])
			if t2 != "" && !strings.HasPrefix(t2, ">") && !strings.HasPrefix(t2, "|") {
				text = t2
			}
		}
		text = strings.TrimSpace(text)
		return text, text != ""
	}
	if nick != "" && strings.HasPrefix(lower, nick) && len(text) > len(nick) && !isAlnumByte(text, len(nick)) {
		t := strings.TrimSpace(text[len(nick):])
		return t, t != ""
	}
	return "", false
}

// getTarget ports the plugin's get_target: it splits "name > nick",
// "name | nick" and "tell nick about name" into the factoid name, the reply
// target and the reply prefix.
func getTarget(nick, text, origTarget string) (string, string, string) {
	target, retmsg := origTarget, ""
	if strings.HasPrefix(text, "tell ") {
		text = " " + text
	}
	if i := strings.LastIndex(text, ">"); i >= 0 {
		if f := strings.Fields(text[i+1:]); len(f) > 0 {
			target = f[0]
		}
		text = strings.TrimSpace(text[:i])
		retmsg = nick + " wants you to know: "
	} else if ti, ai := strings.Index(text, " tell "), strings.Index(text, " about "); ti >= 0 && ai >= 0 {
		if f := strings.Fields(text[ti+6:]); len(f) > 0 {
			target = f[0]
		}
		text = strings.TrimSpace(text[ai+7:])
		retmsg = nick + " wants you to know: "
	}
	if i := strings.Index(text, "|"); i >= 0 {
		if retmsg == "" {
			retmsg = strings.TrimSpace(text[i+1:]) + ": "
		}
		text = strings.TrimSpace(text[:i])
	}
	if target == "me" {
		target = nick
	}
	if !strings.EqualFold(target, origTarget) && strings.HasPrefix(target, "#") {
		target, retmsg = origTarget, ""
	}
	if !strings.EqualFold(target, origTarget) && !girc.IsValidNick(target) {
		target, retmsg = origTarget, ""
	}
	rm := ""
	if len(retmsg) >= 2 {
		rm = retmsg[:len(retmsg)-2]
	}
	if (strings.EqualFold(target, nick) || strings.EqualFold(rm, nick)) && !strings.EqualFold(nick, origTarget) {
		target = nick
		retmsg = "(In the future, please use a private message to investigate) "
	}
	return text, target, retmsg
}

func parseRegexEdit(st *parseState) (Command, bool) {
	text := st.text
	if strings.Contains(text, " is<sed>") {
		text = strings.Replace(text, "is<sed>", "=~", 1)
	}
	if strings.Contains(text, " is <sed>") {
		text = strings.Replace(text, "is <sed>", "=~", 1)
	}
	text = strings.Replace(text, "~=", "=~", 1)
	idx := strings.Index(text, "=~")
	if idx < 0 {
		return Command{}, false
	}
	name := strings.ToLower(strings.TrimSpace(text[:idx]))
	re := strings.TrimSpace(text[idx+2:])
	if name == "" {
		return Command{}, false
	}
	cmd := Command{Kind: KindRegex, Name: name, Target: st.origTarget}
	re = strings.TrimPrefix(re, "s")
	if re == "" {
		cmd.Err = "Missing end delimiter"
		return cmd, true
	}
	delim, size := decodeRune(re)
	if !strings.HasSuffix(re, string(delim)) || len(re) < 2*size {
		cmd.Err = "Missing end delimiter"
		return cmd, true
	}
	if strings.Count(re, string(delim)) != 3 {
		cmd.Err = "Too many (or not enough) delimiters"
		return cmd, true
	}
	parts := strings.SplitN(re[size:len(re)-size], string(delim), 2)
	if len(parts) != 2 {
		cmd.Err = "Too many (or not enough) delimiters"
		return cmd, true
	}
	if len(parts[0]) > maxPatternLen {
		cmd.Err = fmt.Sprintf("Malformed regex (longer than %d bytes)", maxPatternLen)
		return cmd, true
	}
	if _, err := regexp.Compile(parts[0]); err != nil {
		cmd.Err = "Malformed regex"
		return cmd, true
	}
	cmd.Pattern, cmd.Replacement = parts[0], parts[1]
	return cmd, true
}

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func isAlnumByte(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	r, _ := decodeRune(s[i:])
	return isAlnum(r)
}
