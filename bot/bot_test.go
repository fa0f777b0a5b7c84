package bot

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// girc's handleConnect sleeps a hard-coded 2 s after RPL_WELCOME in a
	// goroutine of its own that nothing can stop; it ends by itself.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/lrstanley/girc.handleConnect"))
}

type testBot struct {
	*Bot
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	states []State
	once   sync.Once
}

func testConfig(nick string, st Store, srv *fakeIRCd) Config {
	cfg := DefaultConfig()
	cfg.Name = nick
	cfg.Servers = []string{"fake:6667"}
	cfg.Nick = nick
	cfg.BotChannel = "#bots"
	cfg.Store = st
	cfg.Hedge = 300 * time.Millisecond
	cfg.HandoffTimeout = 5 * time.Second
	cfg.PingInterval = time.Second
	cfg.SendRate = 50
	cfg.SendBurst = 50
	cfg.Dial = srv.Dial
	cfg.IsPrimary = func() bool { return true }
	cfg.PrimaryNick = func() string { return "alpha" }
	return cfg
}

func startBot(t *testing.T, cfg Config) *testBot {
	t.Helper()
	tb := &testBot{t: t, done: make(chan error, 1)}
	cfg.OnState = func(s State) {
		tb.mu.Lock()
		tb.states = append(tb.states, s)
		tb.mu.Unlock()
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tb.Bot = b
	ctx, cancel := context.WithCancel(context.Background())
	tb.cancel = cancel
	go func() { tb.done <- b.Run(ctx) }()
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBot) stop() { tb.once.Do(tb.doStop) }

func (tb *testBot) doStop() {
	tb.cancel()
	if err := tb.Close(); err != nil {
		tb.t.Errorf("Close: %v", err)
	}
	select {
	case err := <-tb.done:
		if err != nil {
			tb.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		tb.t.Errorf("Run did not return")
	}
}

func (tb *testBot) lastState() State {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.states) == 0 {
		return State{}
	}
	return tb.states[len(tb.states)-1]
}

// sees reports whether the bot's own presence model has nick in ch.
func (tb *testBot) sees(ch, nick string) bool {
	var ok bool
	tb.request(context.Background(), func(ls *loopState) { ok = ls.pres.present(ch, nick) })
	return ok
}

func view(self, active string, peers ...Peer) View {
	return View{Self: self, Active: active, Order: peers}
}

func peer(name string, rank int) Peer {
	return Peer{Name: name, Nick: name, Rank: rank, Alive: true, Healthy: true}
}

func TestNewValidates(t *testing.T) {
	good := testConfig("alpha", newMemStore(), newFakeIRCd())
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"no servers", func(c *Config) { c.Servers = nil }, "servers"},
		{"bad server", func(c *Config) { c.Servers = []string{"nohost"} }, "server"},
		{"bad port", func(c *Config) { c.Servers = []string{"h:99999"} }, "port"},
		{"bad nick", func(c *Config) { c.Nick = "9bad nick" }, "nick"},
		{"bad channel", func(c *Config) { c.BotChannel = "bots" }, "bot channel"},
		{"bad relay", func(c *Config) { c.RelayChannel = "x y" }, "relay channel"},
		{"no store", func(c *Config) { c.Store = nil }, "store"},
		{"sasl half", func(c *Config) { c.SASLUser = "u" }, "sasl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			_, err := New(c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestAnswerWhenActive(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.chans = []string{"#chan"}
	st.put("foo", "bar")
	a := startBot(t, testConfig("alpha", st, srv))
	a.SetView(view("alpha", "alpha", peer("alpha", 1), peer("beta", 2)))
	eventually(t, "alpha joins #chan and #bots", func() bool {
		return srv.inChannel("#chan", "alpha") && srv.inChannel("#bots", "alpha")
	})
	eventually(t, "healthy state", func() bool { return a.lastState().Healthy && a.lastState().Nick == "alpha" })
	srv.addUser("alice", "#chan")
	srv.say("alice", "#chan", "!foo")
	eventually(t, "answer", func() bool { return len(srv.privmsgs("alpha", "#chan")) == 1 })
	if got := srv.privmsgs("alpha", "#chan")[0]; got != "foo is bar" {
		t.Fatalf("answer %q", got)
	}
	// private lookup, and the 30 s repeat filter in the channel
	srv.say("alice", "alpha", "foo")
	srv.say("alice", "#chan", "alpha: foo")
	eventually(t, "private answer", func() bool { return len(srv.privmsgs("alpha", "alice")) == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(srv.privmsgs("alpha", "#chan")); n != 1 {
		t.Fatalf("repeat filter: %d channel answers", n)
	}
	if a.Stats().Answers < 2 || st.lookups["foo"] < 2 {
		t.Fatalf("stats %+v lookups %v", a.Stats(), st.lookups)
	}
}

func TestStandbyStaysSilentAndParts(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.chans = []string{"#chan"}
	st.put("foo", "bar")
	b := startBot(t, testConfig("beta", st, srv))
	// beta is active first (alpha down) and joins
	b.SetView(view("beta", "beta", peer("alpha", 1), peer("beta", 2)))
	eventually(t, "beta joins #chan", func() bool { return srv.inChannel("#chan", "beta") })
	// alpha is back in gossip: beta stays until alpha's nick is in #chan
	b.SetView(view("beta", "alpha", peer("alpha", 1), peer("beta", 2)))
	srv.addUser("alice", "#chan")
	srv.say("alice", "#chan", "!foo")
	time.Sleep(200 * time.Millisecond)
	if !srv.inChannel("#chan", "beta") {
		t.Fatal("beta parted before alpha was present")
	}
	srv.addUser("alpha", "#chan")
	eventually(t, "beta parts #chan", func() bool { return !srv.inChannel("#chan", "beta") })
	if !srv.inChannel("#bots", "beta") {
		t.Fatal("beta left the bot channel")
	}
	if n := len(srv.privmsgs("beta", "#chan")); n != 0 {
		t.Fatalf("standby answered %d times", n)
	}
	// a private question is answered by whoever receives it
	srv.say("alice", "beta", "foo")
	eventually(t, "private answer", func() bool { return len(srv.privmsgs("beta", "alice")) == 1 })
}

func TestHedgeGuardHit(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.chans = []string{"#chan"}
	st.put("foo", "bar")
	// alpha (rank 1) and beta (rank 2) both think they are active.
	a := startBot(t, testConfig("alpha", st, srv))
	b := startBot(t, testConfig("beta", st, srv))
	a.SetView(view("alpha", "alpha", peer("alpha", 1), peer("beta", 2)))
	b.SetView(view("beta", "beta", peer("alpha", 1), peer("beta", 2)))
	eventually(t, "both in #chan", func() bool { return srv.inChannel("#chan", "alpha") && srv.inChannel("#chan", "beta") })
	srv.addUser("alice", "#chan")
	eventually(t, "beta sees alpha", func() bool { return b.sees("#chan", "alpha") && a.sees("#chan", "beta") })
	srv.say("alice", "#chan", "!foo")
	eventually(t, "beta guard hit", func() bool { return b.Stats().GuardHits == 1 })
	time.Sleep(2 * 300 * time.Millisecond)
	if na, nb := len(srv.privmsgs("alpha", "#chan")), len(srv.privmsgs("beta", "#chan")); na != 1 || nb != 0 {
		t.Fatalf("answers alpha=%d beta=%d, want 1 0", na, nb)
	}
	if b.Stats().Hedges != 1 {
		t.Fatalf("beta hedges %d", b.Stats().Hedges)
	}
}

func TestHedgeExpiresAndLeave(t *testing.T) {
	setup := func(t *testing.T, hedge time.Duration) (*fakeIRCd, *testBot) {
		srv := newFakeIRCd()
		t.Cleanup(srv.Close)
		st := newMemStore()
		st.chans = []string{"#chan"}
		st.put("foo", "bar")
		cfg := testConfig("beta", st, srv)
		cfg.Hedge = hedge
		b := startBot(t, cfg)
		b.SetView(view("beta", "beta", peer("alpha", 1), peer("beta", 2)))
		srv.addUser("alpha", "#chan") // a frozen alpha: present, silent
		srv.addUser("alice", "#chan")
		eventually(t, "beta sees alpha in #chan", func() bool { return b.sees("#chan", "alpha") })
		return srv, b
	}
	t.Run("expires", func(t *testing.T) {
		srv, b := setup(t, 300*time.Millisecond)
		srv.say("alice", "#chan", "!foo")
		eventually(t, "answer after hedge", func() bool { return len(srv.privmsgs("beta", "#chan")) == 1 })
		if b.Stats().Hedges != 1 || b.Stats().GuardHits != 0 {
			t.Fatalf("stats %+v", b.Stats())
		}
	})
	t.Run("higher bot quits", func(t *testing.T) {
		srv, b := setup(t, time.Hour)
		srv.say("alice", "#chan", "!foo")
		eventually(t, "hedging", func() bool { return b.Stats().Hedges == 1 })
		srv.mu.Lock()
		srv.quitLocked(srv.clients["alpha"], "killed")
		srv.mu.Unlock()
		eventually(t, "answer after alpha quits", func() bool { return len(srv.privmsgs("beta", "#chan")) == 1 })
	})
}

func TestFreezeBacklogDropped(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.put("foo", "bar")
	a := startBot(t, testConfig("alpha", st, srv))
	a.SetView(view("alpha", "alpha", peer("alpha", 1)))
	srv.addUser("alice", "#bots")
	eventually(t, "alpha in #bots", func() bool { return srv.inChannel("#bots", "alpha") })
	// simulate a stopped process: the tick is 5 s old
	a.lastTick.Store(a.mono(time.Now().Add(-5 * time.Second)))
	srv.say("alice", "#bots", "!foo")
	eventually(t, "dropped as stale", func() bool { return a.Stats().DroppedStale == 1 })
	a.Resumed()
	srv.say("alice", "#bots", "!foo")
	eventually(t, "dropped as stale again", func() bool { return a.Stats().DroppedStale == 2 })
	// after 2*Hedge questions are answered again
	time.Sleep(700 * time.Millisecond)
	srv.say("alice", "#bots", "!foo")
	eventually(t, "answered", func() bool { return len(srv.privmsgs("alpha", "#bots")) == 1 })
}

// TestShortStallBacklogHedged: after a stall shorter than 2*Hedge (a loaded
// machine) the backlog is not dropped but hedged against every other bot:
// dropped if another bot speaks first, answered after Hedge otherwise.
func TestShortStallBacklogHedged(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.chans = []string{"#chan"}
	st.put("foo", "bar")
	st.put("baz", "qux")
	cfg := testConfig("alpha", st, srv)
	cfg.Hedge = time.Second
	a := startBot(t, cfg)
	a.SetView(view("alpha", "alpha", peer("alpha", 1), peer("beta", 2)))
	srv.addUser("beta", "#chan") // a lower-ranked bot that may have taken over
	srv.addUser("alice", "#chan")
	eventually(t, "alpha sees beta in #chan", func() bool { return a.sees("#chan", "beta") })

	// stall of 1.5 s (< 2*Hedge): the question waits; beta answers it.
	a.lastTick.Store(a.mono(time.Now().Add(-1500 * time.Millisecond)))
	srv.say("alice", "#chan", "!foo")
	eventually(t, "hedged", func() bool { return a.Stats().Hedges == 1 })
	srv.say("beta", "#chan", "foo is bar")
	eventually(t, "guard hit", func() bool { return a.Stats().GuardHits == 1 })

	// another short stall, nobody else answers: alpha answers after Hedge.
	time.Sleep(1100 * time.Millisecond)
	a.lastTick.Store(a.mono(time.Now().Add(-1500 * time.Millisecond)))
	srv.say("alice", "#chan", "!baz")
	eventually(t, "answered after the hedge", func() bool { return len(srv.privmsgs("alpha", "#chan")) == 1 })
	if n := a.Stats().DroppedStale; n != 0 {
		t.Fatalf("short-stall backlog dropped %d questions", n)
	}
}

func TestHandoff(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.chans = []string{"#chan", "#other"}
	st.put("foo", "bar")
	st.put("baz", "qux")
	a := startBot(t, testConfig("alpha", st, srv))
	a.SetView(view("alpha", "alpha", peer("alpha", 1), peer("beta", 2)))
	srv.addUser("alice", "#chan")
	eventually(t, "alpha in channels", func() bool { return srv.inChannel("#chan", "alpha") && srv.inChannel("#other", "alpha") })
	hc := make(chan error, 1)
	go func() { hc <- a.Handoff(context.Background()) }()
	// leaving: alpha answers while beta is not there yet
	la := peer("alpha", 1)
	la.Leaving = true
	a.SetView(view("alpha", "beta", la, peer("beta", 2)))
	time.Sleep(100 * time.Millisecond)
	srv.say("alice", "#chan", "!foo")
	eventually(t, "draining alpha answers", func() bool { return len(srv.privmsgs("alpha", "#chan")) == 1 })
	select {
	case err := <-hc:
		t.Fatalf("Handoff returned early: %v", err)
	default:
	}
	b := startBot(t, testConfig("beta", st, srv))
	b.SetView(view("beta", "beta", la, peer("beta", 2)))
	select {
	case err := <-hc:
		if err != nil {
			t.Fatalf("Handoff: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Handoff did not return")
	}
	eventually(t, "alpha quit", func() bool { return !srv.connected("alpha") })
	// beta (not leaving, alpha excluded from H) answers at once
	srv.say("alice", "#chan", "!baz")
	eventually(t, "beta answers", func() bool { return len(srv.privmsgs("beta", "#chan")) == 1 })
	if n := len(srv.privmsgs("alpha", "#chan")); n != 1 {
		t.Fatalf("alpha answered %d", n)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("Run after handoff: %v", err)
		}
		a.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Handoff")
	}
}

func TestCRLFInjection(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.put("evil", "x\r\nQUIT :pwned\r\nPRIVMSG #bots :second\x00third")
	st.put("long", strings.Repeat("é", 600))
	a := startBot(t, testConfig("alpha", st, srv))
	a.SetView(view("alpha", "alpha", peer("alpha", 1)))
	srv.addUser("alice", "#bots")
	eventually(t, "alpha in #bots", func() bool { return srv.inChannel("#bots", "alpha") })
	srv.say("alice", "#bots", "!evil")
	srv.say("alice", "#bots", "!long")
	srv.say("alice", "#bots", "!evil | bob\rNOTICE x :y")
	a.Announce("announce\nKICK #bots alice")
	eventually(t, "answers", func() bool { return len(srv.privmsgs("alpha", "#bots")) >= 4 })
	time.Sleep(200 * time.Millisecond)
	if n := len(srv.privmsgs("alpha", "#bots")); n != 4 {
		t.Fatalf("%d PRIVMSG lines for 4 replies: %q", n, srv.privmsgs("alpha", "#bots"))
	}
	for _, l := range srv.lines("alpha") {
		cmd := strings.SplitN(l, " ", 2)[0]
		switch cmd {
		case "PRIVMSG", "JOIN", "PING", "CAP", "NICK", "USER", "PONG":
		default:
			t.Errorf("unexpected command line %q", l)
		}
		if len(l) > maxLineBytes-prefixReserve {
			t.Errorf("line too long (%d): %q", len(l), l)
		}
	}
	want := map[string]bool{
		"evil is x  QUIT :pwned  PRIVMSG #bots :second third": false,
		"announce KICK #bots alice":                           false,
		"bob NOTICE x :y: please see above":                   false, // the plugin's repeat filter
	}
	for _, m := range srv.privmsgs("alpha", "#bots") {
		if _, ok := want[m]; ok {
			want[m] = true
		} else if !strings.HasPrefix(m, "long is é") || !utf8.ValidString(m) {
			t.Errorf("unexpected message %q", m)
		}
	}
	for m, seen := range want {
		if !seen {
			t.Errorf("missing message %q", m)
		}
	}
}

func TestMalformedInput(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.put("foo", "bar")
	a := startBot(t, testConfig("alpha", st, srv))
	a.SetView(view("alpha", "alpha", peer("alpha", 1)))
	srv.addUser("alice", "#bots")
	eventually(t, "alpha in #bots", func() bool { return srv.inChannel("#bots", "alpha") })
	// Lines girc cannot parse at all make it drop the connection (girc
	// behaviour); the bot reconnects and keeps working.
	for _, l := range []string{
		":",
		"PRIVMSG",
		":x PRIVMSG",
		":alice!u@h PRIVMSG #bots",
		":alice!u@h PRIVMSG #bots :!\xff\xfe\xfd",
		":alice!u@h PRIVMSG #bots :!" + strings.Repeat("a", 5000),
		":alice!u@h PRIVMSG #bots :\x01ACTION !foo\x01",
		":alice!u@h JOIN",
		":alice!u@h KICK #bots",
		":fake 353 alpha",
		":alice!u@h NICK",
		":alice!u@h PRIVMSG #bots :!foo =~ s/(/x/",
		":alice!u@h PRIVMSG #bots :!foo =~ s/" + strings.Repeat("(a*)*", 200) + "/x/",
		"\xff\xfe PRIVMSG \x00",
	} {
		srv.sendRaw("alpha", l)
	}
	eventually(t, "still answers", func() bool {
		if srv.inChannel("#bots", "alpha") {
			srv.say("alice", "#bots", "!foo")
		}
		time.Sleep(200 * time.Millisecond)
		for _, m := range srv.privmsgs("alpha", "#bots") {
			if m == "foo is bar" {
				return true
			}
		}
		return false
	})
}

func TestReconnectAndState(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	cfg := testConfig("alpha", st, srv)
	cfg.Servers = []string{"down:1", "fake:6667"}
	var fails int
	var mu sync.Mutex
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "down:1" {
			mu.Lock()
			fails++
			mu.Unlock()
			return nil, errors.New("refused")
		}
		return srv.Dial(ctx, network, addr)
	}
	a := startBot(t, cfg)
	eventually(t, "connected via second server", func() bool {
		s := a.lastState()
		return s.Connected && s.Server == "fake:6667"
	})
	// server drops us: state goes irc-down, then we come back
	srv.mu.Lock()
	c := srv.clients["alpha"]
	srv.mu.Unlock()
	c.conn.Close()
	eventually(t, "irc-down seen", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, s := range a.states[1:] {
			if !s.Connected && s.Reason == ReasonIRCDown {
				return true
			}
		}
		return false
	})
	eventually(t, "reconnected", func() bool { return a.lastState().Connected && a.Stats().Connects == 2 })
}

func TestNickCollision(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	srv.addUser("alpha", "#bots")
	a := startBot(t, testConfig("alpha", newMemStore(), srv))
	eventually(t, "nick alpha_", func() bool { return a.lastState().Nick == "alpha_" })
	// the holder leaves: we take our own nick back
	srv.mu.Lock()
	srv.quitLocked(srv.clients["alpha"], "bye")
	srv.mu.Unlock()
	eventually(t, "nick alpha", func() bool { return a.lastState().Nick == "alpha" })
}

func TestEditsAndReorder(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.editors = []string{"ed!*@*"}
	var reorders []string
	var mu sync.Mutex
	cfg := testConfig("alpha", st, srv)
	cfg.RelayChannel = "#ops"
	cfg.OnReorder = func(by string) error {
		mu.Lock()
		reorders = append(reorders, by)
		mu.Unlock()
		return nil
	}
	a := startBot(t, cfg)
	a.SetView(view("alpha", "alpha", peer("alpha", 1)))
	srv.addUser("ed", "#bots")
	srv.addUser("mallory", "#bots")
	eventually(t, "alpha in #bots/#ops", func() bool { return srv.inChannel("#bots", "alpha") && srv.inChannel("#ops", "alpha") })
	srv.say("ed", "#bots", "!foo is bar")
	eventually(t, "added", func() bool { _, err := st.GetFactoid("foo"); return err == nil })
	srv.say("mallory", "#bots", "!foo2 is evil")
	eventually(t, "forwarded", func() bool { return len(srv.privmsgs("alpha", "#ops")) == 1 })
	if got := srv.privmsgs("alpha", "#ops")[0]; got != "In #bots, mallory said: !foo2 is evil" {
		t.Fatalf("relay %q", got)
	}
	eventually(t, "told", func() bool { return len(srv.privmsgs("alpha", "mallory")) == 1 })
	srv.say("mallory", "#bots", "@reorder")
	srv.say("ed", "#bots", "@reorder")
	eventually(t, "reordered", func() bool { mu.Lock(); defer mu.Unlock(); return len(reorders) == 1 })
	if reorders[0] != "ed" {
		t.Fatalf("reorder by %v", reorders)
	}
}

func TestTLSAndSASL(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	srv.tlsConfig = selfSignedTLS(t)
	srv.saslUser, srv.saslPass = "alphaacct", "s3cret"
	cfg := testConfig("alpha", newMemStore(), srv)
	cfg.TLS, cfg.TLSInsecureSkipVerify = true, true
	cfg.SASLUser, cfg.SASLPassword = "alphaacct", "s3cret"
	a := startBot(t, cfg)
	eventually(t, "registered over TLS with SASL", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return a.lastState().Connected && len(srv.saslOK) == 1 && srv.saslOK[0] == "alphaacct"
	})
}

func TestAccountEditor(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.editors = []string{"account:Jane"}
	a := startBot(t, testConfig("alpha", st, srv))
	a.SetView(view("alpha", "alpha", peer("alpha", 1)))
	eventually(t, "alpha in #bots", func() bool { return srv.inChannel("#bots", "alpha") })
	// account-tag on the message
	srv.sendRaw("alpha", "@account=jane :jj!u@h PRIVMSG #bots :!one is 1")
	eventually(t, "edit by account tag", func() bool { _, err := st.GetFactoid("one"); return err == nil })
	// extended-join tells us the account; the message has no tag
	srv.sendRaw("alpha", ":kk!u@h JOIN #bots jane :Jane K")
	srv.sendRaw("alpha", ":kk!u@h PRIVMSG #bots :!two is 2")
	eventually(t, "edit by extended-join account", func() bool { _, err := st.GetFactoid("two"); return err == nil })
	// logged out (account-notify): no longer an editor
	srv.sendRaw("alpha", ":kk!u@h ACCOUNT *")
	srv.sendRaw("alpha", ":kk!u@h PRIVMSG #bots :!three is 3")
	eventually(t, "forwarded", func() bool { return len(srv.privmsgs("alpha", "kk")) == 1 })
	if _, err := st.GetFactoid("three"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("non-editor edit stored: %v", err)
	}
}

func TestLagged(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	cfg := testConfig("alpha", newMemStore(), srv)
	cfg.LagLimit = 300 * time.Millisecond
	a := startBot(t, cfg)
	eventually(t, "healthy", func() bool { return a.lastState().Healthy })
	srv.setNoPong(true)
	eventually(t, "lagged", func() bool { s := a.lastState(); return s.Connected && !s.Healthy && s.Reason == ReasonLagged })
	srv.setNoPong(false)
	// the outstanding probe is never answered; after 30 s the bot would
	// reconnect. Answering the next probe is enough to be healthy again:
	srv.sendRaw("alpha", ":fake PONG fake :"+func() string {
		var tok string
		eventually(t, "probe", func() bool {
			for _, l := range srv.lines("alpha") {
				if strings.HasPrefix(l, "PING ") {
					tok = strings.TrimPrefix(strings.TrimPrefix(l, "PING "), ":")
				}
			}
			return tok != ""
		})
		return tok
	}())
	eventually(t, "healthy again", func() bool { return a.lastState().Healthy })
}

func TestPartAfterHandoffTimeoutAndChannelsChanged(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.chans = []string{"#a", "#b"}
	cfg := testConfig("beta", st, srv)
	cfg.HandoffTimeout = 500 * time.Millisecond
	b := startBot(t, cfg)
	b.SetView(view("beta", "beta", peer("alpha", 1), peer("beta", 2)))
	eventually(t, "joined #a #b", func() bool { return srv.inChannel("#a", "beta") && srv.inChannel("#b", "beta") })
	st.mu.Lock()
	st.chans = []string{"#a", "#c"}
	st.mu.Unlock()
	b.ChannelsChanged()
	eventually(t, "parted #b, joined #c", func() bool {
		return !srv.inChannel("#b", "beta") && srv.inChannel("#c", "beta") && srv.inChannel("#a", "beta")
	})
	// alpha is active in gossip but never shows up: part after HandoffTimeout
	b.SetView(view("beta", "alpha", peer("alpha", 1), peer("beta", 2)))
	eventually(t, "parted after timeout", func() bool { return !srv.inChannel("#a", "beta") && !srv.inChannel("#c", "beta") })
	if !srv.inChannel("#bots", "beta") {
		t.Fatal("left the bot channel")
	}
	// hot standby joins again, silently
	b.SetView(View{Self: "beta", Active: "alpha", Order: []Peer{peer("alpha", 1), peer("beta", 2)}, HotStandby: true})
	eventually(t, "hot standby joins", func() bool { return srv.inChannel("#a", "beta") && srv.inChannel("#c", "beta") })

	// cfg.HotStandby: the bot computes it itself (first usable candidate after the active node)
	cfg2 := testConfig("gamma", st, srv)
	cfg2.HotStandby = true
	g := startBot(t, cfg2)
	g.SetView(view("gamma", "alpha", peer("alpha", 1), peer("gamma", 2), peer("delta", 3)))
	eventually(t, "gamma hot standby joins", func() bool { return srv.inChannel("#a", "gamma") })
	g.SetView(view("gamma", "alpha", peer("alpha", 1), peer("delta", 2), peer("gamma", 3)))
	eventually(t, "gamma not first after active: parts", func() bool { return !srv.inChannel("#a", "gamma") })
}

func TestLifecycle(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	cfg := testConfig("alpha", newMemStore(), srv)
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, errors.New("unreachable")
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Handoff and Announce on a bot that is not running do not block.
	if err := b.Handoff(context.Background()); err != nil {
		t.Fatalf("Handoff before Run: %v", err)
	}
	b.Announce("nobody hears this")
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background()) }()
	eventually(t, "running", func() bool { b.runMu.Lock(); defer b.runMu.Unlock(); return b.running })
	if err := b.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	if s := b.Stats(); s.Connects != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestHandoffOfStandbyStaysSilent(t *testing.T) {
	srv := newFakeIRCd()
	defer srv.Close()
	st := newMemStore()
	st.chans = []string{"#chan"}
	st.put("foo", "bar")
	// beta is the hot standby, alpha (a virtual user here) the active node
	srv.addUser("alpha", "#chan", "#bots")
	srv.addUser("alice", "#chan")
	b := startBot(t, testConfig("beta", st, srv))
	b.SetView(View{Self: "beta", Active: "alpha", Order: []Peer{peer("alpha", 1), peer("beta", 2)}, HotStandby: true})
	eventually(t, "beta in #chan", func() bool { return b.sees("#chan", "alpha") })
	hc := make(chan error, 1)
	go func() { hc <- b.Handoff(context.Background()) }()
	srv.say("alice", "#chan", "!foo")
	select {
	case err := <-hc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Handoff did not return")
	}
	eventually(t, "beta quit", func() bool { return !srv.connected("beta") })
	if n := len(srv.privmsgs("beta", "#chan")); n != 0 || b.Stats().Hedges != 0 {
		t.Fatalf("draining standby answered %d (stats %+v)", n, b.Stats())
	}
}
