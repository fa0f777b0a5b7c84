package bot

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lrstanley/girc"
)

var sanitizeTests = []struct {
	in   string
	max  int
	want string
}{
	{"plain", 0, "plain"},
	{"a\r\nb", 0, "a  b"},
	{"a\nQUIT", 0, "a QUIT"},
	{"nul\x00x", 0, "nul x"},
	{"bad\xffutf", 0, "bad\uFFFDutf"},
	{"ééé", 3, "é"},
	{"abc", 2, "ab"},
	{"日本語", 4, "日"},
	{"x", -1, "x"},
}

func TestSanitizeText(t *testing.T) {
	for _, tt := range sanitizeTests {
		if got := SanitizeText(tt.in, tt.max); got != tt.want {
			t.Errorf("SanitizeText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func FuzzSanitizeText(f *testing.F) {
	for _, tt := range sanitizeTests {
		f.Add(tt.in, tt.max)
	}
	f.Fuzz(func(t *testing.T, in string, max int) {
		max = max % 1000
		out := SanitizeText(in, max)
		if strings.ContainsAny(out, "\r\n\x00") || !utf8.ValidString(out) {
			t.Fatalf("unsafe output %q", out)
		}
		if max > 0 && len(out) > max {
			t.Fatalf("output %d bytes > %d", len(out), max)
		}
		ev := newLine("PRIVMSG", "#c"+in, in)
		if ev == nil {
			return
		}
		b := string(ev.Bytes())
		if strings.ContainsAny(b, "\r\n\x00") || len(b) > maxLineBytes-prefixReserve {
			t.Fatalf("unsafe line %q", b)
		}
		cmd, params := rfcSplit(b)
		if cmd != "PRIVMSG" || len(params) != 2 || params[0] != ev.Params[0] {
			t.Fatalf("line %q does not parse back as one PRIVMSG to %q: %q", b, ev.Params[0], params)
		}
	})
}

func TestNewLine(t *testing.T) {
	tests := []struct {
		cmd    string
		params []string
		want   string
	}{
		{"PRIVMSG", []string{"#c", "hi there"}, "PRIVMSG #c :hi there"},
		{"PRIVMSG", []string{"#c x", "a\r\nQUIT"}, "PRIVMSG #cx :a  QUIT"},
		{"PRIVMSG", []string{":bob", "x"}, "PRIVMSG bob x"},
		{"JOIN", []string{"#a,#b"}, "JOIN #a,#b"},
		{"PART", []string{"#a", "bye\n"}, "PART #a :bye "},
		{"QUIT", []string{"bye\r\nJOIN #x"}, "QUIT :bye  JOIN #x"},
	}
	for _, tt := range tests {
		if got := string(newLine(tt.cmd, tt.params...).Bytes()); got != tt.want {
			t.Errorf("newLine(%s %q) = %q, want %q", tt.cmd, tt.params, got, tt.want)
		}
	}
	if newLine("PRIVMSG", "\r\n", "x") != nil {
		t.Error("empty target accepted")
	}
}

func TestFitLine(t *testing.T) {
	tests := []struct {
		text string
		max  int
		want int // resulting LenOpts must be < max
	}{
		{"short", 395, len("PRIVMSG #c short")},
		{strings.Repeat("é", 300), 395, 0},
		{strings.Repeat("a b", 200), 100, 0},
	}
	for _, tt := range tests {
		ev := newLine("PRIVMSG", "#c", tt.text)
		fitLine(ev, tt.max)
		if ev.LenOpts(false) >= tt.max || !utf8.ValidString(ev.Params[1]) {
			t.Errorf("fitLine(%d bytes, %d): %d bytes", len(tt.text), tt.max, ev.LenOpts(false))
		}
		if tt.want > 0 && ev.LenOpts(false) != tt.want {
			t.Errorf("short line changed: %q", ev.Bytes())
		}
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newTokenBucket(2, 3, t0)
	for i := 0; i < 3; i++ {
		if d := b.take(t0); d != 0 {
			t.Fatalf("burst take %d waited %v", i, d)
		}
	}
	if d := b.take(t0); d != 500*time.Millisecond {
		t.Fatalf("empty bucket wait %v", d)
	}
	if d := b.take(t0.Add(250 * time.Millisecond)); d != 250*time.Millisecond {
		t.Fatalf("half refilled wait %v", d)
	}
	if d := b.take(t0.Add(500 * time.Millisecond)); d != 0 {
		t.Fatalf("refilled take waited %v", d)
	}
	// a long idle period refills only up to burst
	now := t0.Add(time.Hour)
	n := 0
	for b.take(now) == 0 {
		n++
	}
	if n != 3 {
		t.Fatalf("after idle took %d, want 3", n)
	}
	// sustained rate over 10 s: 2/s
	sent := 0
	for ms := 0; ms < 10000; ms += 10 {
		if b.take(now.Add(time.Duration(ms)*time.Millisecond)) == 0 {
			sent++
		}
	}
	if sent < 19 || sent > 21 {
		t.Fatalf("sent %d in 10 s at 2/s", sent)
	}
}

func TestMatchMask(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*!*@ubuntu/member/*", "bob!b@ubuntu/member/bob", true},
		{"*!*@ubuntu/member/*", "bob!b@example.com", false},
		{"BOB!*@*", "bob!x@y", true},
		{"b?b!*@*", "bab!x@y", true},
		{"b?b!*@*", "bb!x@y", false},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"nick[1]!*@*", "NICK{1}!u@h", true},
		{strings.Repeat("*a", 50), strings.Repeat("a", 49) + "b", false},
	}
	for _, tt := range tests {
		if got := MatchMask(tt.pat, tt.s); got != tt.want {
			t.Errorf("MatchMask(%q, %q) = %v", tt.pat, tt.s, got)
		}
	}
}

func TestIsEditor(t *testing.T) {
	eds := []string{"*!*@ubuntu/member/*", "account:Jane", " "}
	tests := []struct {
		mask, acct string
		want       bool
	}{
		{"bob!b@ubuntu/member/bob", "", true},
		{"x!y@z", "jane", true},
		{"x!y@z", "*", false},
		{"x!y@z", "", false},
		{"x!y@z", "john", false},
	}
	for _, tt := range tests {
		if got := IsEditor(eds, tt.mask, tt.acct); got != tt.want {
			t.Errorf("IsEditor(%q, %q) = %v", tt.mask, tt.acct, got)
		}
	}
}

func TestPresence(t *testing.T) {
	p := newPresence()
	p.selfJoined("#C", "me")
	p.names("#c", "@Op +voice plain!u@h ~owner")
	p.join("#c", "late")
	p.join("#d", "late")
	steps := []struct {
		do   func()
		ch   string
		nick string
		want bool
	}{
		{func() {}, "#c", "me", true},
		{func() {}, "#C", "op", true},
		{func() {}, "#c", "VOICE", true},
		{func() {}, "#c", "plain", true},
		{func() {}, "#c", "owner", true},
		{func() {}, "#c", "nobody", false},
		{func() { p.part("#c", "op") }, "#c", "op", false},
		{func() { p.rename("voice", "voice2") }, "#c", "voice2", true},
		{func() {}, "#c", "voice", false},
		{func() { p.quit("late") }, "#d", "late", false},
		{func() {}, "#c", "late", false},
		{func() { p.selfLeft("#c") }, "#c", "plain", false},
		{func() {}, "#c", "", false},
	}
	for i, s := range steps {
		s.do()
		if got := p.present(s.ch, s.nick); got != s.want {
			t.Fatalf("step %d: present(%s, %s) = %v", i, s.ch, s.nick, got)
		}
	}
	p.setAccount("Bob", "bobacct")
	p.rename("bob", "bobby")
	if p.account("BOBBY") != "bobacct" {
		t.Fatal("account lost on rename")
	}
	p.setAccount("bobby", "*")
	if p.account("bobby") != "" {
		t.Fatal("logout kept account")
	}
}

func TestDecide(t *testing.T) {
	a, b, c := peer("a", 1), peer("b", 2), peer("c", 3)
	aLeaving := a
	aLeaving.Leaving = true
	in := func(nicks ...string) func(string) bool {
		return func(n string) bool { return slices.Contains(nicks, n) }
	}
	tests := []struct {
		name string
		in   DecideInput
		want Decision
	}{
		{"standby silent", DecideInput{View: view("b", "a", a, b, c), SelfNick: "b", Present: in("a", "b")}, Decision{Action: Silent}},
		{"no active silent", DecideInput{View: view("b", "", a, b, c), SelfNick: "b", Present: in("b")}, Decision{Action: Silent}},
		{"hot standby silent", DecideInput{View: View{Self: "c", Active: "b", Order: []Peer{a, b, c}, HotStandby: true}, SelfNick: "c"}, Decision{Action: Silent}},
		{"active first", DecideInput{View: view("a", "a", a, b, c), SelfNick: "a", Present: in("a", "b", "c")}, Decision{Action: AnswerNow}},
		{"active, higher absent", DecideInput{View: view("b", "b", a, b, c), SelfNick: "b", Present: in("b", "c")}, Decision{Action: AnswerNow}},
		{"active, higher present", DecideInput{View: view("c", "c", a, b, c), SelfNick: "c", Present: in("a", "b", "c")}, Decision{Action: HedgeWait, Hedge: []string{"a", "b"}}},
		{"active, higher leaving", DecideInput{View: view("b", "b", aLeaving, b, c), SelfNick: "b", Present: in("a", "b")}, Decision{Action: AnswerNow}},
		{"own nick in view ignored", DecideInput{View: view("b", "b", Peer{Name: "a", Nick: "b"}, b), SelfNick: "b", Present: in("b")}, Decision{Action: AnswerNow}},
		{"draining, successor absent", DecideInput{View: view("a", "b", aLeaving, b), SelfNick: "a", Present: in("a"), Draining: true, Successor: "b"}, Decision{Action: AnswerNow}},
		{"draining, successor present", DecideInput{View: view("a", "b", aLeaving, b), SelfNick: "a", Present: in("a", "b"), Draining: true, Successor: "b"}, Decision{Action: HedgeWait, Hedge: []string{"b"}}},
		{"nil present", DecideInput{View: view("a", "a", a), SelfNick: "a"}, Decision{Action: AnswerNow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.in)
			if got.Action != tt.want.Action || !slices.Equal(got.Hedge, tt.want.Hedge) {
				t.Fatalf("got %v %v, want %v %v", got.Action, got.Hedge, tt.want.Action, tt.want.Hedge)
			}
		})
	}
}

func TestSuccessorNick(t *testing.T) {
	a, b, c := peer("a", 1), peer("b", 2), peer("c", 3)
	a.Leaving = true
	bDead := b
	bDead.Alive = false
	tests := []struct {
		v    View
		want string
	}{
		{view("a", "b", a, b, c), "b"},
		{view("a", "a", a, b, c), "b"},
		{view("a", "a", a, bDead, c), "c"},
		{view("a", "", a), ""},
	}
	for i, tt := range tests {
		if got := successorNick(tt.v, "a"); got != tt.want {
			t.Errorf("%d: successor %q, want %q", i, got, tt.want)
		}
	}
}

// rfcSplit parses a line the way an RFC 1459 server does: parameters are
// separated by single spaces, a parameter starting with ':' is the trailing one.
func rfcSplit(line string) (string, []string) {
	parts := strings.Split(line, " ")
	var params []string
	for i := 1; i < len(parts); i++ {
		if strings.HasPrefix(parts[i], ":") {
			params = append(params, strings.Join(parts[i:], " ")[1:])
			break
		}
		if parts[i] != "" {
			params = append(params, parts[i])
		}
	}
	return parts[0], params
}

var ircLineSeeds = []string{
	":alice!u@h PRIVMSG #chan :!foo",
	":alice!u@h PRIVMSG alpha :foo > bob",
	":alice!u@h PRIVMSG #chan :!foo =~ s/(/x/",
	":alice!u@h PRIVMSG #chan",
	":alice!u@h JOIN",
	":alice!u@h JOIN #chan acct :Real",
	":alice!u@h KICK #chan",
	":alice!u@h KICK #chan alpha :bye",
	":alice!u@h NICK",
	":alice!u@h QUIT :x",
	":fake 353 alpha = #chan :@alpha +beta",
	":fake 001 alpha :hi",
	"@account=jane :x!y@z PRIVMSG #chan :!a is b",
	":fake PONG fake :meshbot-1",
	":alice!u@h PRIVMSG #chan :!\xff\xfe",
}

// FuzzHandleIRC feeds arbitrary server lines to the event loop state: it
// must never panic and every queued line must be a single safe IRC line.
func FuzzHandleIRC(f *testing.F) {
	for _, s := range ircLineSeeds {
		f.Add(s)
	}
	st := newMemStore()
	st.put("foo", "bar\r\nQUIT")
	st.editors = []string{"account:jane"}
	f.Fuzz(func(t *testing.T, line string) {
		e := girc.ParseEvent(line)
		if e == nil {
			return
		}
		cfg := DefaultConfig()
		cfg.Nick, cfg.Servers, cfg.BotChannel, cfg.Store = "alpha", []string{"x:1"}, "#bots", st
		cfg.IsPrimary = func() bool { return true }
		bot, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ls := bot.newLoopState()
		ls.connected, ls.sess = true, 1
		bot.sessID = 1
		bot.regSess.Store(1)
		ls.view = view("alpha", "alpha", peer("alpha", 1))
		ls.pres.selfJoined("#chan", "alpha")
		ls.handleIRC(ircEvent{sess: 1, ev: *e})
		ls.tick(time.Now().Add(time.Hour))
		ls.after()
		for _, q := range []chan outLine{bot.ctrlQ, bot.msgQ} {
			for len(q) > 0 {
				l := <-q
				b := string(l.ev.Bytes())
				if strings.ContainsAny(b, "\r\n\x00") || len(b) > maxLineBytes-prefixReserve {
					t.Fatalf("unsafe line %q", b)
				}
			}
		}
	})
}

// TestStaleReplies: an answer still queued when the bot decides to leave its
// channel, or when a long freeze is detected, is not sent any more; private
// replies and lines queued afterwards are.
func TestStaleReplies(t *testing.T) {
	b, err := New(testConfig("alpha", newMemStore(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	at := func(d time.Duration) time.Time { return b.epoch.Add(d) }
	line := func(target string, queued time.Time) outLine {
		l := outLine{maxAge: replyMaxAge, queued: queued}
		if isChannelName(target) {
			l.reply = ircLower(target)
		}
		return l
	}
	type tc struct {
		name  string
		l     outLine
		stale bool
	}
	check := func(tests []tc) {
		t.Helper()
		for _, tt := range tests {
			if got := b.staleReply(tt.l); got != tt.stale {
				t.Errorf("%s: stale = %v, want %v", tt.name, got, tt.stale)
			}
		}
	}
	b.notePart("#Chan", at(10*time.Second))
	check([]tc{
		{"queued before the part", line("#chan", at(9*time.Second)), true},
		{"queued after the part", line("#chan", at(11*time.Second)), false},
		{"other channel", line("#other", at(9*time.Second)), false},
		{"private reply", line("alice", at(9*time.Second)), false},
		{"not a reply", outLine{queued: at(time.Second)}, false},
	})
	b.longFrozeAt.Store(b.mono(at(20 * time.Second)))
	check([]tc{
		{"channel reply before the freeze", line("#other", at(19*time.Second)), true},
		{"private reply before the freeze", line("alice", at(19*time.Second)), true},
		{"private reply after the freeze", line("alice", at(21*time.Second)), false},
		{"channel reply after the part and the freeze", line("#chan", at(21*time.Second)), false},
	})
}
