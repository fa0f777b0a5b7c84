package meshtest

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func recv(t *testing.T, tr *Transport, wait time.Duration) (*memberlist.Packet, bool) {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p, true
	case <-time.After(wait):
		return nil, false
	}
}

func TestPackets(t *testing.T) {
	n := NewNetwork(1)
	a, b := n.NewTransport("a"), n.NewTransport("b")
	defer a.Shutdown()
	defer b.Shutdown()
	if _, err := a.WriteTo([]byte("hi"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	p, ok := recv(t, b, 5*time.Second)
	if !ok || string(p.Buf) != "hi" || p.From.String() != a.Addr() {
		t.Fatalf("got %+v", p)
	}
	ip, port, err := a.FinalAdvertiseAddr("", 0)
	if err != nil || ip.String() != "127.0.0.1" || port == 0 {
		t.Fatalf("FinalAdvertiseAddr = %v %d %v", ip, port, err)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(n *Network)
		delivered bool
	}{
		{"no faults", func(*Network) {}, true},
		{"total loss", func(n *Network) { n.SetLoss(1) }, false},
		{"partitioned", func(n *Network) { n.Partition([]string{"a"}, []string{"b"}) }, false},
		{"partition with b unlisted", func(n *Network) { n.Partition([]string{"a"}) }, false},
		{"same side", func(n *Network) { n.Partition([]string{"a", "b"}) }, true},
		{"healed", func(n *Network) { n.Partition([]string{"a"}, []string{"b"}); n.Heal() }, true},
		{"delayed", func(n *Network) { n.SetDelay(30*time.Millisecond, 10*time.Millisecond) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NewNetwork(2)
			a, b := n.NewTransport("a"), n.NewTransport("b")
			defer a.Shutdown()
			defer b.Shutdown()
			tt.setup(n)
			_, _ = a.WriteTo([]byte("x"), b.Addr())
			wait := 300 * time.Millisecond
			if tt.delivered {
				wait = 5 * time.Second
			}
			_, got := recv(t, b, wait)
			if got != tt.delivered {
				t.Fatalf("delivered = %v, want %v", got, tt.delivered)
			}
			echoed := make(chan struct{})
			go func() {
				defer close(echoed)
				select {
				case c := <-b.StreamCh():
					_, _ = io.Copy(c, c) // echo
					_ = c.Close()
				case <-time.After(wait + time.Second):
				}
			}()
			conn, err := a.DialTimeout(b.Addr(), time.Second)
			if tt.delivered {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				if _, err := conn.Write([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 4)
				if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
					t.Fatalf("echo = %q, %v", buf, err)
				}
				_ = conn.Close()
			} else if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("dial err = %v, want ErrUnreachable", err)
			}
			<-echoed
		})
	}
}

func TestLossRate(t *testing.T) {
	n := NewNetwork(3)
	a, b := n.NewTransport("a"), n.NewTransport("b")
	defer a.Shutdown()
	defer b.Shutdown()
	n.SetLoss(0.25)
	const total = 2000
	for range total {
		_, _ = a.WriteTo([]byte("x"), b.Addr())
	}
	got := len(b.PacketCh())
	if got < total*65/100 || got > total*85/100 {
		t.Fatalf("delivered %d of %d at 25%% loss", got, total)
	}
	if st := n.Stats(); st.Lost+st.Packets != total {
		t.Fatalf("stats = %+v", st)
	}
}

func TestPartitionBreaksStream(t *testing.T) {
	n := NewNetwork(4)
	a, b := n.NewTransport("a"), n.NewTransport("b")
	defer a.Shutdown()
	defer b.Shutdown()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := <-b.StreamCh()
		_, _ = io.Copy(io.Discard, c)
		_ = c.Close()
	}()
	conn, err := a.DialTimeout(b.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	n.Partition([]string{"a"}, []string{"b"})
	if _, err := conn.Write([]byte("no")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("write across partition: %v", err)
	}
	<-done
}

func TestShutdownAndRestartAtAddress(t *testing.T) {
	n := NewNetwork(5)
	a, b := n.NewTransport("a"), n.NewTransport("b")
	defer a.Shutdown()
	addr := b.Addr()
	if _, err := n.NewTransportAt("b", addr); err == nil {
		t.Fatal("address reuse while in use succeeded")
	}
	_ = b.Shutdown()
	_ = b.Shutdown() // twice is fine
	if _, err := a.DialTimeout(addr, time.Second); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("dial to shut down transport: %v", err)
	}
	// Packets to nobody vanish without blocking.
	if _, err := a.WriteTo([]byte("x"), addr); err != nil {
		t.Fatal(err)
	}
	b2, err := n.NewTransportAt("b", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Shutdown()
	_, _ = a.WriteTo([]byte("again"), addr)
	if p, ok := recv(t, b2, 5*time.Second); !ok || string(p.Buf) != "again" {
		t.Fatalf("restarted transport got %+v", p)
	}
	if _, err := n.NewTransportAt("c", "nope"); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestShutdownClosesStreams(t *testing.T) {
	n := NewNetwork(6)
	a, b := n.NewTransport("a"), n.NewTransport("b")
	defer a.Shutdown()
	accepted := make(chan error, 1)
	go func() {
		c := <-b.StreamCh()
		_, err := c.Read(make([]byte, 1)) // blocks until b shuts down
		accepted <- err
	}()
	conn, err := a.DialTimeout(b.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = b.Shutdown()
	if err := <-accepted; err == nil {
		t.Fatal("read on a shut down transport's stream succeeded")
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("peer's read succeeded after shutdown")
	}
}
