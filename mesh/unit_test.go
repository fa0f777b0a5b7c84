package mesh

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newUnstarted(t *testing.T, clock *fakeClock, logs *syncBuffer) *Mesh {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = "self"
	cfg.Now = clock.Now
	if logs != nil {
		cfg.Logger = testLogger(logs)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

func TestUndecodableMetaMakesMemberUnhealthy(t *testing.T) {
	clock := &fakeClock{t: t0}
	var logs syncBuffer
	m := newUnstarted(t, clock, &logs)
	m.UpdateMeta(func(mt *Meta) { mt.Health = HealthOK })
	d := &delegate{m: m}
	good := encodeMeta(Meta{Rank: 0, Health: HealthOK, Nick: "peer-nick"})
	node := &memberlist.Node{Name: "peer", Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: good}
	d.NotifyJoin(node)
	m.evaluate()
	if got := m.Active(); got != "peer" {
		t.Fatalf("active = %q, want peer (rank 0)", got)
	}
	for range 3 {
		bad := *node
		bad.Meta = []byte{42, 1, 2}
		d.NotifyUpdate(&bad)
		m.evaluate()
	}
	mem, _ := memberOf(m, "peer")
	if mem.Role != RoleUnhealthy || mem.Nick != "peer-nick" {
		t.Fatalf("peer = %+v", mem)
	}
	if got := m.Active(); got != "self" {
		t.Fatalf("active = %q, want self", got)
	}
	if n := strings.Count(logs.String(), "undecodable member meta"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	// Good meta again: healthy again.
	d.NotifyUpdate(node)
	m.evaluate()
	if got := m.Active(); got != "peer" {
		t.Fatalf("active = %q after recovery", got)
	}
	// Messages with bad envelopes are dropped without effect.
	d.NotifyMsg([]byte{0xff})
	if st := m.Stats(); st.Alive != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestFreezeResetsHealthySince(t *testing.T) {
	clock := &fakeClock{t: t0}
	m := newUnstarted(t, clock, nil)
	m.UpdateMeta(func(mt *Meta) { mt.Health = HealthOK })
	if hs := m.Self().HealthySince; !hs.Equal(t0) {
		t.Fatalf("HealthySince = %v, want %v", hs, t0)
	}
	clock.Add(time.Minute)
	m.freezeDetected(3 * time.Second)
	if hs := m.Self().HealthySince; !hs.Equal(t0.Add(time.Minute)) {
		t.Fatalf("HealthySince after freeze = %v", hs)
	}
	if !hasEvent(m, EventFreeze, "resumed after freeze of 3s") {
		t.Fatalf("events = %+v", m.Events(0))
	}
	if st := m.Stats(); st.Freezes != 1 {
		t.Fatalf("stats = %+v", st)
	}
	// Not healthy: nothing to reset.
	m.UpdateMeta(func(mt *Meta) { mt.Health = HealthLagged })
	m.ResetHealthySince()
	if hs := m.Self().HealthySince; !hs.IsZero() {
		t.Fatalf("HealthySince of unhealthy node = %v", hs)
	}
}

func TestSubscribeCancelAndShutdown(t *testing.T) {
	clock := &fakeClock{t: t0}
	m := newUnstarted(t, clock, nil)
	ch1, cancel1 := m.Subscribe()
	ch2, _ := m.Subscribe()
	m.UpdateMeta(func(mt *Meta) { mt.Entries = 1 })
	m.UpdateMeta(func(mt *Meta) { mt.Entries = 2 }) // coalesced
	for _, ch := range []<-chan struct{}{ch1, ch2} {
		select {
		case <-ch:
		default:
			t.Fatal("no notification")
		}
		select {
		case <-ch:
			t.Fatal("notifications not coalesced")
		default:
		}
	}
	cancel1()
	cancel1() // idempotent
	if _, ok := <-ch1; ok {
		t.Fatal("cancelled channel not closed")
	}
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch2; ok {
		t.Fatal("channel not closed by Shutdown")
	}
	ch3, cancel3 := m.Subscribe()
	cancel3()
	if _, ok := <-ch3; ok {
		t.Fatal("subscription after Shutdown not closed")
	}
}

func TestNotRunning(t *testing.T) {
	m := newUnstarted(t, &fakeClock{t: t0}, nil)
	if err := m.SendTo("x", nil); !errorsIs(err, ErrNotRunning) {
		t.Fatalf("SendTo = %v", err)
	}
	if err := m.Leave(time.Second); !errorsIs(err, ErrNotRunning) {
		t.Fatalf("Leave = %v", err)
	}
	if _, _, err := m.ListKeys(); !errorsIs(err, ErrNotRunning) {
		t.Fatalf("ListKeys = %v", err)
	}
	m.Broadcast([]byte("dropped")) // no-op, must not panic
	if got := m.Active(); got != "" {
		t.Fatalf("active before start = %q", got)
	}
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); !errorsIs(err, ErrAlreadyStarted) {
		t.Fatalf("Start after Shutdown = %v", err)
	}
}

func TestMemDemotions(t *testing.T) {
	d := NewMemDemotions()
	if err := d.Demote("", t0); err == nil {
		t.Fatal("empty name accepted")
	}
	_ = d.Demote("b", t0.Add(time.Minute))
	_ = d.Demote("a", t0)
	_ = d.Demote("a", t0.Add(-time.Minute)) // older: ignored
	got, _ := d.Demotions()
	if len(got) != 2 || got[0].Node != "a" || !got[0].At.Equal(t0) || got[1].Node != "b" {
		t.Fatalf("demotions = %+v", got)
	}
	_ = d.ClearDemotions()
	if got, _ := d.Demotions(); len(got) != 0 {
		t.Fatalf("after clear: %+v", got)
	}
}

func TestRealNetworkAdvertisesBindPort(t *testing.T) {
	// Bind a free port first so the test does not depend on 7946.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cfg := DefaultConfig()
	cfg.Name = "real"
	cfg.BindAddr = addr
	cfg.Profile = ProfileFast
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	if err := m.Start(); err != nil {
		t.Skipf("cannot bind %s: %v", addr, err)
	}
	if got := m.Self().Addr; got != addr {
		t.Fatalf("advertised %s, want %s", got, addr)
	}
}
