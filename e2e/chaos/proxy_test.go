package chaos

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// eventually polls cond every 5ms until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// udpServer answers every packet with prefix+packet (or swallows it when
// echo is false) and counts packets.
type udpServer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	wg   sync.WaitGroup
}

func newUDPServer(t *testing.T, prefix string, echo bool) *udpServer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &udpServer{conn: c}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got = append(s.got, append([]byte(nil), buf[:n]...))
			s.mu.Unlock()
			if echo {
				_, _ = c.WriteToUDP(append([]byte(prefix), buf[:n]...), from)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); s.wg.Wait() })
	return s
}

func (s *udpServer) addr() string { return s.conn.LocalAddr().String() }

func (s *udpServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// tcpEcho echoes every connection (prefix first) until the client closes.
func tcpEcho(t *testing.T, prefix string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := c.Write([]byte(prefix)); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String()
}

func newTestProxy(t *testing.T, cfg ProxyConfig) *Proxy {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	p, err := NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func udpClient(t *testing.T, to string) *net.UDPConn {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readUDP(t *testing.T, c *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 65536)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read udp: %v", err)
	}
	return buf[:n]
}

func TestFaultsValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Faults
		ok   bool
	}{
		{"zero", Faults{}, true},
		{"delay jitter loss", Faults{Delay: time.Millisecond, Jitter: time.Millisecond, Loss: 0.5}, true},
		{"loss one", Faults{Loss: 1}, true},
		{"negative delay", Faults{Delay: -1}, false},
		{"negative jitter", Faults{Jitter: -1}, false},
		{"loss above one", Faults{Loss: 1.5}, false},
		{"negative loss", Faults{Loss: -0.1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tt.f, err, tt.ok)
			}
		})
	}
}

func TestProxyUDPRelay(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
	}{
		{"clean", Faults{}},
		{"delay", Faults{Delay: 30 * time.Millisecond}},
		{"delay and jitter", Faults{Delay: 10 * time.Millisecond, Jitter: 20 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newUDPServer(t, "echo:", true)
			p := newTestProxy(t, ProxyConfig{Target: srv.addr()})
			if err := p.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			c := udpClient(t, p.Addr())
			for i := range 5 {
				msg := []byte{'m', byte('0' + i)}
				start := time.Now()
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				got := readUDP(t, c)
				rtt := time.Since(start)
				if want := append([]byte("echo:"), msg...); !bytes.Equal(got, want) {
					t.Fatalf("got %q, want %q", got, want)
				}
				// A lower bound only: the relay may never be faster than
				// the delay it was told to add in each direction.
				if min := 2 * tt.faults.Delay; rtt < min {
					t.Fatalf("round trip %s shorter than 2×delay %s", rtt, min)
				}
			}
			st := p.Stats()
			if st.UDPIn != 5 || st.UDPOut != 5 || st.UDPDropped != 0 {
				t.Fatalf("stats %+v, want 5 in, 5 out, 0 dropped", st)
			}
		})
	}
}

func TestProxyUDPLossAll(t *testing.T) {
	srv := newUDPServer(t, "", true)
	p := newTestProxy(t, ProxyConfig{Target: srv.addr()})
	if err := p.SetFaults(Faults{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	c := udpClient(t, p.Addr())
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the packet to be dropped", func() bool { return p.Stats().UDPDropped == 1 })
	if err := p.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	if got := readUDP(t, c); string(got) != "kept" {
		t.Fatalf("first packet through is %q, want %q (the lost one must never arrive)", got, "kept")
	}
	if n := srv.count(); n != 1 {
		t.Fatalf("server got %d packets, want 1", n)
	}
}

func TestProxyUDPLossRate(t *testing.T) {
	srv := newUDPServer(t, "", false)
	p := newTestProxy(t, ProxyConfig{Target: srv.addr(), Seed: 7})
	if err := p.SetFaults(Faults{Loss: 0.3}); err != nil {
		t.Fatal(err)
	}
	c := udpClient(t, p.Addr())
	const n = 400
	for i := range n {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 { // let the proxy drain its socket buffer
			eventually(t, "the proxy to read the burst", func() bool { return p.Stats().UDPIn == int64(i+1) })
		}
	}
	eventually(t, "all packets handled", func() bool {
		st := p.Stats()
		return st.UDPIn == n && int64(srv.count())+st.UDPDropped == n
	})
	if d := p.Stats().UDPDropped; d < n*15/100 || d > n*45/100 {
		t.Fatalf("dropped %d of %d at loss 0.3", d, n)
	}
}

func TestProxyFilter(t *testing.T) {
	srv := newUDPServer(t, "", true)
	tcp := tcpEcho(t, "")
	p := newTestProxy(t, ProxyConfig{Target: srv.addr(), Allow: func(ip net.IP) bool { return !ip.IsLoopback() }})
	c := udpClient(t, p.Addr())
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the udp packet to be filtered", func() bool { return p.Stats().Filtered == 1 })
	if err := p.SetTarget(tcp); err != nil {
		t.Fatal(err)
	}
	tc, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := tc.Read(make([]byte, 1)); err == nil {
		t.Fatalf("filtered tcp connection delivered %d bytes", n)
	}
	st := p.Stats()
	if st.Filtered != 2 || st.UDPIn != 0 || st.TCPConns != 0 || srv.count() != 0 {
		t.Fatalf("stats %+v, server got %d; want 2 filtered and nothing relayed", st, srv.count())
	}
}

func TestProxyNoTarget(t *testing.T) {
	p := newTestProxy(t, ProxyConfig{})
	c := udpClient(t, p.Addr())
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the udp packet to be dropped", func() bool { return p.Stats().NoTarget == 1 })
	tc, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Fatal("tcp connection without a target delivered data")
	}
	eventually(t, "the tcp connection to be refused", func() bool { return p.Stats().NoTarget == 2 })
}

func TestProxyTCPRelay(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
	}{
		{"clean", Faults{}},
		{"delay jitter loss", Faults{Delay: 5 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t, ProxyConfig{Target: tcpEcho(t, "hi:")})
			if err := p.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			payload := make([]byte, 512*1024)
			if _, err := rand.Read(payload); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(payload)
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				errc <- err
			}()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			if want := append([]byte("hi:"), payload...); !bytes.Equal(got, want) {
				t.Fatalf("relayed stream differs: got %d bytes, want %d", len(got), len(want))
			}
			st := p.Stats()
			if st.TCPConns != 1 {
				t.Fatalf("TCPConns = %d, want 1", st.TCPConns)
			}
			if tt.faults.Loss > 0 && st.TCPPenalties == 0 {
				t.Fatalf("loss %v set but no chunk got the retransmit penalty: %+v", tt.faults.Loss, st)
			}
		})
	}
}

func TestProxySetTarget(t *testing.T) {
	a, b := newUDPServer(t, "a:", true), newUDPServer(t, "b:", true)
	ta, tb := tcpEcho(t, "A"), tcpEcho(t, "B")
	p := newTestProxy(t, ProxyConfig{Target: a.addr()})
	c := udpClient(t, p.Addr())
	for _, step := range []struct{ udp, tcp, wantUDP, wantTCP string }{
		{a.addr(), ta, "a:x", "A"},
		{b.addr(), tb, "b:x", "B"},
	} {
		if err := p.SetTarget(step.udp); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := readUDP(t, c); string(got) != step.wantUDP {
			t.Fatalf("udp reply %q, want %q", got, step.wantUDP)
		}
		if err := p.SetTarget(step.tcp); err != nil {
			t.Fatal(err)
		}
		if got := p.Target(); got != step.tcp {
			t.Fatalf("Target() = %q, want %q", got, step.tcp)
		}
		tc, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1)
		if _, err := io.ReadFull(tc, buf); err != nil || string(buf) != step.wantTCP {
			t.Fatalf("tcp greeting %q, %v; want %q", buf, err, step.wantTCP)
		}
		tc.Close()
	}
}

func TestProxyClose(t *testing.T) {
	p := newTestProxy(t, ProxyConfig{Target: tcpEcho(t, "")})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the connection to be relayed", func() bool { return p.Stats().TCPBytes >= 4 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.SetTarget("127.0.0.1:1"); !errors.Is(err, ErrProxyClosed) {
		t.Fatalf("SetTarget after Close = %v, want ErrProxyClosed", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("relayed connection still open after Close")
		}
	}
}

func TestNewProxyErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ProxyConfig
	}{
		{"no listen", ProxyConfig{}},
		{"bad listen", ProxyConfig{Listen: "nonsense"}},
		{"bad target", ProxyConfig{Listen: "127.0.0.1:0", Target: "no-port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := NewProxy(tt.cfg); err == nil {
				p.Close()
				t.Fatalf("NewProxy(%+v) succeeded", tt.cfg)
			}
		})
	}
}

func TestDelayLineOrder(t *testing.T) {
	d := newDelayLine()
	defer d.close()
	base := time.Now().Add(20 * time.Millisecond)
	var mu sync.Mutex
	var got []int
	done := make(chan struct{})
	offsets := []int{3, 1, 2, 1, 0, 5, 4}
	for i, off := range offsets {
		d.push(base.Add(time.Duration(off)*time.Millisecond), func() {
			mu.Lock()
			got = append(got, i)
			n := len(got)
			mu.Unlock()
			if n == len(offsets) {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("delay line did not run everything")
	}
	// By due time, ties in push order.
	want := []int{4, 1, 3, 2, 0, 6, 5}
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

func TestStallMonitor(t *testing.T) {
	m := NewStallMonitor(5*time.Millisecond, time.Hour)
	start := time.Now()
	time.Sleep(30 * time.Millisecond)
	m.Stop()
	m.Stop()
	if s := m.Between(start, time.Now()); len(s) != 0 {
		t.Fatalf("stalls above a 1h threshold: %v", s)
	}
	// A zero threshold records every tick as a stall: the bookkeeping and
	// the time filter are what is tested here.
	m = NewStallMonitor(time.Millisecond, time.Nanosecond)
	eventually(t, "recorded stalls", func() bool { return len(m.Between(start, time.Now())) >= 3 })
	m.Stop()
	all := m.Between(start, time.Now())
	if got := m.Between(all[1].End, all[1].End); len(got) != 1 || got[0] != all[1] {
		t.Fatalf("Between(end, end) = %v, want [%v]", got, all[1])
	}
	if got := m.Between(time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)); len(got) != 0 {
		t.Fatalf("stalls in the future: %v", got)
	}
}
