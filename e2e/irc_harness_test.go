package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/e2e/irctest"
)

const ngircdPath = "/usr/sbin/ngircd"

// ircd is a running ngircd.
type ircd struct {
	addr    string
	logPath string
}

// startIRCd writes a test config and runs ngircd in the foreground. A
// missing ngircd fails the test: CI installs it.
func startIRCd(t testing.TB) *ircd {
	t.Helper()
	if _, err := os.Stat(ngircdPath); err != nil {
		t.Fatalf("ngircd not found at %s (%v): install ngircd: apt-get install -y ngircd", ngircdPath, err)
	}
	dir := tempDir(t)
	port := freePort(t)
	conf := irctest.NgircdConfig("irc.e2e.test", "127.0.0.1", port)
	confPath := filepath.Join(dir, "ngircd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(ngircdPath, "--configtest", "-f", confPath).CombinedOutput(); err != nil {
		t.Fatalf("ngircd --configtest: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "ngircd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ngircdPath, "-n", "-f", confPath)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ngircd: %v", err)
	}
	procs.add(cmd.Process)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); procs.remove(cmd.Process); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		logf.Close()
	})
	s := &ircd{addr: addr(port), logPath: logPath}
	eventually(t, 15*time.Second, 50*time.Millisecond, "ngircd listening", func() error {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("ngircd exited:\n%s", b)
		default:
		}
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	return s
}

// ircMsg is one PRIVMSG or NOTICE the observer received.
type ircMsg struct {
	At      time.Time
	Command string // PRIVMSG or NOTICE
	From    string // sender nick
	Target  string
	Text    string
}

// ircEvent is a JOIN, PART, QUIT or KICK the observer saw.
type ircEvent struct {
	At      time.Time
	Command string
	Nick    string
	Channel string // "" for QUIT
}

// ircClient is the observer: a minimal raw IRC client that answers PING,
// joins channels, asks questions and records every message with its
// receive time. Its reader goroutine stops on Close.
type ircClient struct {
	t    testing.TB
	nick string
	conn net.Conn

	wmu sync.Mutex
	w   *bufio.Writer

	mu      sync.Mutex
	msgs    []ircMsg
	events  []ircEvent
	raw     []string
	names   map[string][]string      // NAMES being collected
	namesCh map[string]chan []string // waiters for 366
	joined  map[string]chan struct{} // our own JOIN seen
	errs    []string                 // ERROR lines
	welcome chan struct{}
	closed  chan struct{}
	done    chan struct{}
}

// dialIRC connects, registers and waits for RPL_WELCOME.
func dialIRC(t testing.TB, server, nick string) *ircClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", server, 5*time.Second)
	if err != nil {
		t.Fatalf("observer connect %s: %v", server, err)
	}
	c := &ircClient{
		t: t, nick: nick, conn: conn, w: bufio.NewWriter(conn),
		names: map[string][]string{}, namesCh: map[string]chan []string{},
		joined:  map[string]chan struct{}{},
		welcome: make(chan struct{}), closed: make(chan struct{}), done: make(chan struct{}),
	}
	go c.read()
	t.Cleanup(c.Close)
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :meshbot e2e observer")
	select {
	case <-c.welcome:
	case <-c.done:
		t.Fatalf("observer %s: connection closed before welcome: %q", nick, c.rawLines())
	case <-time.After(15 * time.Second):
		t.Fatalf("observer %s: no welcome within 15s: %q", nick, c.rawLines())
	}
	return c
}

// Close disconnects and waits for the reader.
func (c *ircClient) Close() {
	select {
	case <-c.closed:
	default:
		close(c.closed)
		c.wmu.Lock()
		fmt.Fprintf(c.w, "QUIT :bye\r\n")
		c.w.Flush()
		c.wmu.Unlock()
		c.conn.Close()
	}
	<-c.done
}

// send writes one raw line (CRLF appended). Safe from any goroutine.
func (c *ircClient) send(line string) {
	c.sendRaw([]byte(line + "\r\n"))
}

// sendRaw writes bytes as they are.
func (c *ircClient) sendRaw(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.w.Write(b)
	c.w.Flush()
}

func (c *ircClient) privmsg(target, text string) time.Time {
	now := time.Now()
	c.send("PRIVMSG " + target + " :" + text)
	return now
}

func (c *ircClient) read() {
	defer close(c.done)
	r := bufio.NewReaderSize(c.conn, 4096)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		at := time.Now()
		line = strings.TrimRight(line, "\r\n")
		nick, cmd, params := irctest.ParseLine(line)
		c.mu.Lock()
		c.raw = append(c.raw, line)
		switch cmd {
		case "PING":
			c.mu.Unlock()
			arg := ""
			if len(params) > 0 {
				arg = params[len(params)-1]
			}
			c.send("PONG :" + arg)
			continue
		case "001":
			select {
			case <-c.welcome:
			default:
				close(c.welcome)
			}
		case "PRIVMSG", "NOTICE":
			if len(params) >= 2 {
				c.msgs = append(c.msgs, ircMsg{At: at, Command: cmd, From: nick, Target: params[0], Text: params[1]})
			}
		case "JOIN", "PART", "KICK":
			ev := ircEvent{At: at, Command: cmd, Nick: nick}
			if len(params) > 0 {
				ev.Channel = strings.ToLower(params[0])
			}
			if cmd == "KICK" && len(params) > 1 {
				ev.Nick = params[1]
			}
			c.events = append(c.events, ev)
			if cmd == "JOIN" && strings.EqualFold(nick, c.nick) {
				if ch, ok := c.joined[ev.Channel]; ok {
					select {
					case <-ch:
					default:
						close(ch)
					}
				}
			}
		case "QUIT":
			c.events = append(c.events, ircEvent{At: at, Command: cmd, Nick: nick})
		case "353": // RPL_NAMREPLY: me = channel :names
			if len(params) >= 2 {
				ch := strings.ToLower(params[len(params)-2])
				for _, n := range strings.Fields(params[len(params)-1]) {
					c.names[ch] = append(c.names[ch], strings.TrimLeft(n, "@+%&~"))
				}
			}
		case "366": // RPL_ENDOFNAMES: me channel :End
			if len(params) >= 2 {
				ch := strings.ToLower(params[1])
				if w, ok := c.namesCh[ch]; ok {
					w <- c.names[ch]
					delete(c.namesCh, ch)
				}
				delete(c.names, ch)
			}
		case "ERROR":
			c.errs = append(c.errs, line)
		}
		c.mu.Unlock()
	}
}

func (c *ircClient) rawLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.raw)
}

// join joins channel and waits for the server's confirmation.
func (c *ircClient) join(channel string) {
	c.t.Helper()
	ch := make(chan struct{})
	c.mu.Lock()
	c.joined[strings.ToLower(channel)] = ch
	c.mu.Unlock()
	c.send("JOIN " + channel)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("observer could not join %s", channel)
	}
}

// namesOf asks NAMES and returns the nicks in channel.
func (c *ircClient) namesOf(channel string) ([]string, error) {
	key := strings.ToLower(channel)
	w := make(chan []string, 1)
	c.mu.Lock()
	if _, busy := c.namesCh[key]; busy {
		c.mu.Unlock()
		return nil, fmt.Errorf("NAMES %s already pending", channel)
	}
	c.namesCh[key] = w
	c.names[key] = nil
	c.mu.Unlock()
	c.send("NAMES " + channel)
	select {
	case ns := <-w:
		slices.Sort(ns)
		return ns, nil
	case <-time.After(10 * time.Second):
		c.mu.Lock()
		delete(c.namesCh, key)
		c.mu.Unlock()
		return nil, fmt.Errorf("no NAMES reply for %s", channel)
	}
}

// messages returns a copy of the recorded messages.
func (c *ircClient) messages() []ircMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// eventsOf returns the recorded JOIN/PART/QUIT/KICK events.
func (c *ircClient) eventsList() []ircEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// connected reports whether the server connection is still open.
func (c *ircClient) connected() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// ---------------------------------------------------------------- questions

// answerRE extracts the factoid name from an answer "qNNN is ans-qNNN".
var answerRE = regexp.MustCompile(`\b(q\d+) is ans-q\d+\b`)

// question is one "!qNNN" asked by the observer.
type question struct {
	Name string
	At   time.Time
}

// answers maps every question to the answers received for it in channel.
type answerSet map[string][]ircMsg

func collectAnswers(msgs []ircMsg, channel string) answerSet {
	a := answerSet{}
	for _, m := range msgs {
		if m.Command != "PRIVMSG" || !strings.EqualFold(m.Target, channel) {
			continue
		}
		if sm := answerRE.FindStringSubmatch(m.Text); sm != nil {
			a[sm[1]] = append(a[sm[1]], m)
		}
	}
	return a
}

// asker asks a new question every interval until stopped.
type asker struct {
	c        *ircClient
	channel  string
	next     func() string
	mu       sync.Mutex
	asked    []question
	stop     chan struct{}
	finished chan struct{}
}

// startAsker asks next() in channel every interval until Stop (or the test
// ends, or the connection closes); an empty name ends it early.
func startAsker(c *ircClient, channel string, interval time.Duration, next func() string) *asker {
	a := &asker{c: c, channel: channel, next: next, stop: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(a.finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			name := a.next()
			if name == "" {
				return
			}
			at := c.privmsg(channel, "!"+name)
			a.mu.Lock()
			a.asked = append(a.asked, question{Name: name, At: at})
			a.mu.Unlock()
			select {
			case <-a.stop:
				return
			case <-c.done:
				return
			case <-t.C:
			}
		}
	}()
	c.t.Cleanup(func() { a.Stop() }) // also when the test fails before Stop
	return a
}

// Stop stops asking and returns every question asked.
func (a *asker) Stop() []question {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.finished
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}

// questionPool hands out the seeded factoid names q000..qNNN in order.
type questionPool struct {
	mu   sync.Mutex
	next int
	max  int
}

func (p *questionPool) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.max {
		return ""
	}
	p.next++
	return qname(p.next - 1)
}

func qname(i int) string { return fmt.Sprintf("q%03d", i) }
