package bot

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lrstanley/girc"
	"github.com/meshbot/meshbot/e2e/irctest"
)

const ngircdPath = "/usr/sbin/ngircd"

// startNgircd runs a real ngircd on a free loopback port for the test.
func startNgircd(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(ngircdPath); err != nil {
		t.Log("!!!!!!!! ngircd is not installed at " + ngircdPath + ": SKIPPING the real-server integration test !!!!!!!!")
		t.Skip("ngircd not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "ngircd.conf")
	body := irctest.NgircdConfig("irc.test", "127.0.0.1", port)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ngircdPath, "-n", "-f", conf)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ngircd: %v", err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	eventually(t, "ngircd listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return addr
}

// ircUser is a plain girc client that records what it hears.
type ircUser struct {
	c        *girc.Client
	mu       sync.Mutex
	msgs     []string // "from target text"
	joined   map[string]bool
	pres     *presence // our own model: girc's state is racy to read from tests
	welcomed bool
	done     chan struct{}
}

func (u *ircUser) in(ch, nick string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.pres.present(ch, nick)
}

func newIRCUser(t *testing.T, addr, nick string) *ircUser {
	t.Helper()
	host, port, _ := splitServer(addr)
	u := &ircUser{joined: map[string]bool{}, pres: newPresence(), done: make(chan struct{})}
	u.c = girc.New(girc.Config{Server: host, Port: port, Nick: nick, User: nick, AllowFlood: true, PingDelay: -1})
	u.c.Handlers.Add(girc.PRIVMSG, func(_ *girc.Client, e girc.Event) {
		u.mu.Lock()
		u.msgs = append(u.msgs, e.Source.Name+" "+e.Params[0]+" "+e.Last())
		u.mu.Unlock()
	})
	u.c.Handlers.Add(girc.ALL_EVENTS, func(_ *girc.Client, e girc.Event) {
		u.mu.Lock()
		defer u.mu.Unlock()
		switch e.Command {
		case girc.RPL_WELCOME:
			u.welcomed = true
		case girc.JOIN:
			if e.Source.Name == nick {
				u.joined[e.Params[0]] = true
			}
			u.pres.join(e.Params[0], e.Source.Name)
		case girc.PART:
			u.pres.part(e.Params[0], e.Source.Name)
		case girc.QUIT:
			u.pres.quit(e.Source.Name)
		case girc.RPL_NAMREPLY:
			u.pres.names(e.Params[len(e.Params)-2], e.Last())
		}
	})
	go func() { defer close(u.done); _ = u.c.Connect() }()
	t.Cleanup(func() {
		u.c.Close()
		<-u.done
	})
	eventually(t, nick+" registered", func() bool { u.mu.Lock(); defer u.mu.Unlock(); return u.welcomed })
	return u
}

func (u *ircUser) heard() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.msgs...)
}

func TestNgircdActiveAnswersOtherSilent(t *testing.T) {
	addr := startNgircd(t)
	st := newMemStore()
	st.chans = []string{"#chan"}
	st.put("foo", "bar")
	mk := func(nick string) Config {
		cfg := DefaultConfig()
		cfg.Name, cfg.Nick, cfg.Servers, cfg.BotChannel, cfg.Store = nick, nick, []string{addr}, "#bots", st
		cfg.Hedge = 500 * time.Millisecond
		cfg.PingInterval = time.Second
		return cfg
	}
	alpha, beta := peer("alpha", 1), peer("beta", 2)
	a := startBot(t, mk("alpha"))
	b := startBot(t, mk("beta"))
	a.SetView(view("alpha", "alpha", alpha, beta))
	// beta is the hot standby: in every channel, silent
	b.SetView(View{Self: "beta", Active: "alpha", Order: []Peer{alpha, beta}, HotStandby: true})

	u := newIRCUser(t, addr, "carol")
	u.c.Cmd.Join("#chan")
	eventually(t, "carol joined", func() bool { u.mu.Lock(); defer u.mu.Unlock(); return u.joined["#chan"] })
	eventually(t, "both bots in #chan", func() bool { return u.in("#chan", "alpha") && u.in("#chan", "beta") })
	eventually(t, "bots healthy", func() bool { return a.lastState().Healthy && b.lastState().Healthy })
	u.c.Cmd.Message("#chan", "!foo")
	eventually(t, "alpha answers", func() bool { return len(u.heard()) >= 1 })
	time.Sleep(1500 * time.Millisecond) // well past beta's hedge: any second answer would be here
	got := u.heard()
	if len(got) != 1 || got[0] != "alpha #chan foo is bar" {
		t.Fatalf("heard %q, want exactly alpha's answer", got)
	}

	// alpha dies; beta becomes active and answers at once (alpha's QUIT is seen)
	a.stop()
	b.SetView(view("beta", "beta", Peer{Name: "alpha", Nick: "alpha", Rank: 1}, beta))
	eventually(t, "alpha gone", func() bool { return !u.in("#chan", "alpha") })
	st.put("baz", "qux")
	u.c.Cmd.Message("#chan", "!baz")
	eventually(t, "beta answers", func() bool { return len(u.heard()) == 2 })
	if got := u.heard()[1]; got != "beta #chan baz is qux" {
		t.Fatalf("heard %q", got)
	}
}

func TestNgircdHandoffLosesNothing(t *testing.T) {
	addr := startNgircd(t)
	st := newMemStore()
	st.chans = []string{"#chan"}
	const n = 16
	for i := 0; i < n; i++ {
		st.put(fmt.Sprintf("q%d", i), fmt.Sprintf("a%d", i))
	}
	mk := func(nick string) Config {
		cfg := DefaultConfig()
		cfg.Name, cfg.Nick, cfg.Servers, cfg.BotChannel, cfg.Store = nick, nick, []string{addr}, "#bots", st
		cfg.Hedge = 500 * time.Millisecond
		cfg.SendRate = 10
		return cfg
	}
	alpha, beta := peer("alpha", 1), peer("beta", 2)
	leaving := alpha
	leaving.Leaving = true
	a := startBot(t, mk("alpha"))
	b := startBot(t, mk("beta"))
	a.SetView(view("alpha", "alpha", alpha, beta))
	b.SetView(view("beta", "alpha", alpha, beta))
	u := newIRCUser(t, addr, "carol")
	u.c.Cmd.Join("#chan")
	eventually(t, "alpha in #chan", func() bool { return u.in("#chan", "alpha") })
	eventually(t, "beta in #bots", func() bool { return b.lastState().Connected })

	handoff := make(chan error, 1)
	for i := 0; i < n; i++ {
		u.c.Cmd.Message("#chan", fmt.Sprintf("!q%d", i))
		if i == 4 {
			go func() { handoff <- a.Handoff(context.Background()) }()
			a.SetView(view("alpha", "beta", leaving, beta))
		}
		if i == 6 { // beta's view catches up later (gossip lag)
			b.SetView(view("beta", "beta", leaving, beta))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := <-handoff; err != nil {
		t.Fatalf("Handoff: %v", err)
	}
	eventually(t, "all answered", func() bool { return len(u.heard()) >= n })
	time.Sleep(time.Second) // any double answer would arrive now
	count := map[string][]string{}
	for _, h := range u.heard() {
		f := strings.Fields(h) // "bot #chan qN is aN"
		if len(f) == 5 && f[1] == "#chan" {
			count[f[2]] = append(count[f[2]], f[0])
		} else {
			t.Errorf("unexpected message %q", h)
		}
	}
	for i := 0; i < n; i++ {
		if got := count[fmt.Sprintf("q%d", i)]; len(got) != 1 {
			t.Errorf("q%d answered by %v, want exactly one bot", i, got)
		}
	}
	by := map[string]int{}
	for _, bots := range count {
		for _, x := range bots {
			by[x]++
		}
	}
	t.Logf("answers by bot: %v; alpha stats %+v; beta stats %+v", by, a.Stats(), b.Stats())
	if by["alpha"] == 0 || by["beta"] == 0 {
		t.Errorf("handoff not exercised: answers by %v", by)
	}
	if u.in("#chan", "alpha") {
		t.Error("alpha still in #chan after handoff")
	}
}
