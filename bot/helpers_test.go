package bot

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lrstanley/girc"
)

// memStore is an in-memory Store for tests.
type memStore struct {
	mu       sync.Mutex
	facts    map[string]Factoid
	chans    []string
	editors  []string
	lookups  map[string]int
	failGets bool
}

func newMemStore() *memStore {
	return &memStore{facts: map[string]Factoid{}, lookups: map[string]int{}}
}

var errBoom = errors.New("boom")

func (s *memStore) put(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.facts[name] = Factoid{Name: name, Value: value, Author: "tester!t@h", Added: time.Date(2007, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (s *memStore) GetFactoid(name string) (Factoid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failGets {
		return Factoid{}, errBoom
	}
	f, ok := s.facts[name]
	if !ok {
		return Factoid{}, ErrNotFound
	}
	return f, nil
}

func (s *memStore) SetFactoid(name, value, author string) (Factoid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.facts[name]
	if !ok {
		f = Factoid{Name: name, Author: author, Added: time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)}
	} else {
		f.UpdatedBy, f.Updated = author, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	f.Value, f.Forgotten = value, false
	s.facts[name] = f
	return f, nil
}

func (s *memStore) ForgetFactoid(name, author string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.facts[name]
	if !ok {
		return ErrNotFound
	}
	f.Forgotten = true
	s.facts[name] = f
	return nil
}

func (s *memStore) UnforgetFactoid(name, author string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.facts[name]
	if !ok {
		return ErrNotFound
	}
	f.Forgotten = false
	s.facts[name] = f
	return nil
}

func (s *memStore) SearchFactoids(words string, limit int) ([]Factoid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Factoid
	for _, f := range s.facts {
		for _, w := range strings.Fields(words) {
			if strings.Contains(f.Name, w) || strings.Contains(f.Value, w) {
				out = append(out, f)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) CountLookup(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups[name]++
	return nil
}

func (s *memStore) Channels() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.chans...), nil
}

func (s *memStore) Editors() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.editors...), nil
}

// eventually polls cond until it is true or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for: %s", what)
}

// fakeIRCd is a tiny in-memory IRC server for tests: real clients connect
// through Dial (net.Pipe); virtual users are driven by the test.
type fakeIRCd struct {
	mu      sync.Mutex
	clients map[string]*fclient            // folded nick -> client
	chans   map[string]map[string]*fclient // folded channel -> members
	raw     []rawLine                      // every line received from real clients
	wg      sync.WaitGroup
	conns   []net.Conn
	closed  bool
	// options
	tlsConfig *tls.Config // non-nil: connections speak TLS
	saslUser  string      // non-empty: offer SASL PLAIN and require these credentials
	saslPass  string
	noPong    bool     // ignore PING (lag tests)
	saslOK    []string // users authenticated by SASL
}

type rawLine struct {
	from string
	line string
}

type fclient struct {
	srv        *fakeIRCd
	nick, user string
	conn       net.Conn
	out        chan string
	registered bool
	virtual    bool
	inbox      []string
	capNeg     bool // CAP negotiation in progress: no 001 before CAP END
}

func newFakeIRCd() *fakeIRCd {
	return &fakeIRCd{clients: map[string]*fclient{}, chans: map[string]map[string]*fclient{}}
}

func (s *fakeIRCd) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("fake ircd closed")
	}
	a, b := net.Pipe()
	var sc net.Conn = b
	if s.tlsConfig != nil {
		sc = tls.Server(b, s.tlsConfig)
	}
	c := &fclient{srv: s, conn: sc, out: make(chan string, 4096)}
	s.conns = append(s.conns, b)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); c.writer() }()
	go func() { defer s.wg.Done(); s.serve(c) }()
	return a, nil
}

func (s *fakeIRCd) Close() {
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (c *fclient) mask() string { return c.nick + "!" + c.user + "@fake.host" }

func (c *fclient) send(line string) {
	if c.virtual {
		c.inbox = append(c.inbox, line)
		return
	}
	select {
	case c.out <- line:
	default:
	}
}

func (c *fclient) writer() {
	w := bufio.NewWriter(c.conn)
	for line := range c.out {
		if _, err := w.WriteString(line + "\r\n"); err != nil {
			return
		}
		if len(c.out) == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

func (s *fakeIRCd) serve(c *fclient) {
	defer func() {
		s.mu.Lock()
		s.quitLocked(c, "connection closed")
		s.mu.Unlock()
		close(c.out)
		c.conn.Close()
	}()
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.raw = append(s.raw, rawLine{from: c.nick, line: line})
		quit := s.handle(c, line)
		s.mu.Unlock()
		if quit {
			return
		}
	}
}

func (s *fakeIRCd) handle(c *fclient, line string) bool {
	e := girc.ParseEvent(line)
	if e == nil {
		return false
	}
	switch e.Command {
	case "CAP":
		if len(e.Params) == 0 {
			return false
		}
		switch e.Params[0] {
		case "LS":
			c.capNeg = true
			if s.saslUser != "" {
				c.send(":fake CAP * LS :sasl")
			} else {
				c.send(":fake CAP * LS :")
			}
		case "REQ":
			c.send(":fake CAP * ACK :" + e.Last())
		case "END":
			c.capNeg = false
			s.maybeRegister(c)
		}
	case "AUTHENTICATE":
		if len(e.Params) == 0 {
			return false
		}
		if e.Params[0] == "PLAIN" {
			c.send("AUTHENTICATE +")
			return false
		}
		raw, _ := base64.StdEncoding.DecodeString(e.Params[0])
		parts := strings.Split(string(raw), "\x00")
		if len(parts) == 3 && parts[1] == s.saslUser && parts[2] == s.saslPass {
			s.saslOK = append(s.saslOK, parts[1])
			c.send(":fake 900 * * " + parts[1] + " :You are now logged in")
			c.send(":fake 903 * :SASL authentication successful")
		} else {
			c.send(":fake 904 * :SASL authentication failed")
		}
	case "NICK":
		if len(e.Params) == 0 {
			return false
		}
		n := e.Params[0]
		if o, ok := s.clients[ircLower(n)]; ok && o != c {
			c.send(":fake 433 * " + n + " :Nickname is already in use")
			return false
		}
		if c.nick != "" {
			delete(s.clients, ircLower(c.nick))
		}
		old := c.mask()
		oldNick := c.nick
		c.nick = n
		s.clients[ircLower(n)] = c
		if c.registered {
			s.toPeers(c, ":"+old+" NICK :"+n, true)
			for _, m := range s.chans {
				if _, ok := m[ircLower(oldNick)]; ok {
					delete(m, ircLower(oldNick))
					m[ircLower(n)] = c
				}
			}
		}
		s.maybeRegister(c)
	case "USER":
		if len(e.Params) > 0 {
			c.user = e.Params[0]
		}
		s.maybeRegister(c)
	case "PING":
		if !s.noPong {
			c.send(":fake PONG fake :" + e.Last())
		}
	case "JOIN":
		if len(e.Params) > 0 {
			for _, ch := range strings.Split(e.Params[0], ",") {
				s.join(c, ch)
			}
		}
	case "PART":
		if len(e.Params) > 0 {
			for _, ch := range strings.Split(e.Params[0], ",") {
				s.part(c, ch)
			}
		}
	case "PRIVMSG", "NOTICE":
		if len(e.Params) < 2 {
			return false
		}
		s.deliver(c, e.Command, e.Params[0], e.Last())
	case "QUIT":
		s.quitLocked(c, e.Last())
		return true
	}
	return false
}

func (s *fakeIRCd) maybeRegister(c *fclient) {
	if c.registered || c.nick == "" || c.user == "" || c.capNeg {
		return
	}
	c.registered = true
	c.send(":fake 001 " + c.nick + " :Welcome")
	c.send(":fake 376 " + c.nick + " :End of MOTD")
}

func (s *fakeIRCd) join(c *fclient, ch string) {
	f := ircLower(ch)
	m := s.chans[f]
	if m == nil {
		m = map[string]*fclient{}
		s.chans[f] = m
	}
	if _, ok := m[ircLower(c.nick)]; ok {
		return
	}
	m[ircLower(c.nick)] = c
	for _, o := range m {
		o.send(":" + c.mask() + " JOIN " + ch)
	}
	var names []string
	for _, o := range m {
		names = append(names, o.nick)
	}
	sort.Strings(names)
	c.send(":fake 353 " + c.nick + " = " + ch + " :" + strings.Join(names, " "))
	c.send(":fake 366 " + c.nick + " " + ch + " :End of NAMES list")
}

func (s *fakeIRCd) part(c *fclient, ch string) {
	m := s.chans[ircLower(ch)]
	if _, ok := m[ircLower(c.nick)]; !ok {
		return
	}
	for _, o := range m {
		o.send(":" + c.mask() + " PART " + ch)
	}
	delete(m, ircLower(c.nick))
}

func (s *fakeIRCd) toPeers(c *fclient, line string, self bool) {
	seen := map[*fclient]bool{c: !self}
	if self {
		c.send(line)
		seen[c] = true
	}
	for _, m := range s.chans {
		if _, ok := m[ircLower(c.nick)]; !ok {
			continue
		}
		for _, o := range m {
			if !seen[o] {
				seen[o] = true
				o.send(line)
			}
		}
	}
}

func (s *fakeIRCd) quitLocked(c *fclient, reason string) {
	if c.nick == "" || s.clients[ircLower(c.nick)] != c {
		return
	}
	s.toPeers(c, ":"+c.mask()+" QUIT :"+reason, false)
	for _, m := range s.chans {
		delete(m, ircLower(c.nick))
	}
	delete(s.clients, ircLower(c.nick))
}

func (s *fakeIRCd) deliver(c *fclient, cmd, target, text string) {
	line := ":" + c.mask() + " " + cmd + " " + target + " :" + text
	if isChannelName(target) {
		for _, o := range s.chans[ircLower(target)] {
			if o != c {
				o.send(line)
			}
		}
		return
	}
	if o, ok := s.clients[ircLower(target)]; ok {
		o.send(line)
	}
}

// addUser creates a virtual user in the given channels.
func (s *fakeIRCd) addUser(nick string, chans ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &fclient{srv: s, nick: nick, user: "u", virtual: true, registered: true}
	s.clients[ircLower(nick)] = c
	for _, ch := range chans {
		s.join(c, ch)
	}
}

// say sends a PRIVMSG from virtual user nick.
func (s *fakeIRCd) say(nick, target, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliver(s.clients[ircLower(nick)], "PRIVMSG", target, text)
}

// sendRaw writes a raw line to the real client with that nick.
func (s *fakeIRCd) sendRaw(nick, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[ircLower(nick)]; ok {
		c.send(line)
	}
}

func (s *fakeIRCd) inChannel(ch, nick string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.chans[ircLower(ch)][ircLower(nick)]
	return ok
}

func (s *fakeIRCd) connected(nick string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[ircLower(nick)]
	return ok && c.registered
}

// privmsgs returns the PRIVMSG texts that real client from sent to target.
func (s *fakeIRCd) privmsgs(from, target string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.raw {
		if !nickEqual(r.from, from) {
			continue
		}
		e := girc.ParseEvent(r.line)
		if e != nil && e.Command == "PRIVMSG" && len(e.Params) >= 2 && nickEqual(e.Params[0], target) {
			out = append(out, e.Last())
		}
	}
	return out
}

// lines returns all raw lines received from real client from.
func (s *fakeIRCd) lines(from string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.raw {
		if nickEqual(r.from, from) {
			out = append(out, r.line)
		}
	}
	return out
}

// selfSignedTLS returns a server TLS config with a fresh self-signed cert.
func selfSignedTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"fake"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func (s *fakeIRCd) setNoPong(v bool) {
	s.mu.Lock()
	s.noPong = v
	s.mu.Unlock()
}
