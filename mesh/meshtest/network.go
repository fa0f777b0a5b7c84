// Package meshtest provides an in-memory network for memberlist with fault
// injection (packet loss, delay, partitions) for tests of the mesh package
// and of code built on it.
//
// It is modelled on memberlist's MockNetwork/MockTransport but is safe for
// concurrent use (transports can be created and shut down while others
// run, e.g. to restart a node at the same address), never blocks a sender
// on a receiver that has stopped, and routes by address only (so a node
// that claims a taken name at another address is still reachable, which
// duplicate-name tests need).
package meshtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrUnreachable is returned by dials that the network refuses (no such
// address, partitioned, or lost).
var ErrUnreachable = errors.New("meshtest: unreachable")

// packetQueue is the number of packets buffered per transport; more are
// dropped (like a full socket buffer).
const packetQueue = 4096

// Network is a set of in-memory transports that can reach each other,
// subject to the configured faults. All methods are safe for concurrent
// use. The zero value is not usable; call NewNetwork.
type Network struct {
	mu     sync.Mutex
	byAddr map[string]*Transport
	port   int
	loss   float64
	delay  time.Duration
	jitter time.Duration
	group  map[string]int // node name -> partition group; absent = group 0
	rng    *rand.Rand
	stats  Stats
}

// Stats counts what the network did.
type Stats struct {
	Packets     uint64 // packets delivered (or scheduled for delivery)
	Lost        uint64 // packets and dials dropped by the loss setting
	Partitioned uint64 // packets, dials and stream writes refused by partitions
	Overflow    uint64 // packets dropped because the receiver's queue was full
}

// NewNetwork returns an empty network without faults. seed makes loss
// decisions reproducible.
func NewNetwork(seed uint64) *Network {
	return &Network{
		byAddr: make(map[string]*Transport),
		group:  make(map[string]int),
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// NewTransport returns a transport for node name at a new unique address
// (127.0.0.1:N).
func (n *Network) NewTransport(name string) *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		n.port++
		addr := "127.0.0.1:" + strconv.Itoa(n.port)
		if _, taken := n.byAddr[addr]; !taken {
			return n.addLocked(name, addr)
		}
	}
}

// NewTransportAt returns a transport for node name at addr, e.g. to restart
// a node at its old address. The address must not be in use by a transport
// that is not shut down.
func (n *Network) NewTransportAt(name, addr string) (*Transport, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("meshtest: address %q: %w", addr, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, taken := n.byAddr[addr]; taken {
		return nil, fmt.Errorf("meshtest: address %s in use", addr)
	}
	return n.addLocked(name, addr), nil
}

func (n *Network) addLocked(name, addr string) *Transport {
	t := &Transport{
		net:      n,
		name:     name,
		addr:     addr,
		packetCh: make(chan *memberlist.Packet, packetQueue),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	n.byAddr[addr] = t
	return t
}

// SetLoss sets the probability (0..1) that a packet is dropped; a stream
// dial fails with the same probability.
func (n *Network) SetLoss(p float64) {
	n.mu.Lock()
	n.loss = p
	n.mu.Unlock()
}

// SetDelay delays every packet by d plus a uniform random jitter in
// [0, jitter), and every stream dial and stream write by d.
func (n *Network) SetDelay(d, jitter time.Duration) {
	n.mu.Lock()
	n.delay, n.jitter = d, jitter
	n.mu.Unlock()
}

// Partition splits the network: nodes (by name) in different groups cannot
// reach each other. Nodes not listed form one more group together.
// Existing streams between separated nodes fail on their next write.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.group)
	for i, g := range groups {
		for _, name := range g {
			n.group[name] = i + 1
		}
	}
}

// Heal removes all partitions.
func (n *Network) Heal() {
	n.mu.Lock()
	clear(n.group)
	n.mu.Unlock()
}

// Stats returns the fault counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// route decides the fate of a packet or dial from src to dst address.
// It returns the destination (nil if it does not exist), the delay, and
// an error if the packet is to be dropped.
func (n *Network) route(src *Transport, dst string, stream bool) (*Transport, time.Duration, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, ok := n.byAddr[dst]
	if !ok {
		return nil, 0, fmt.Errorf("%w: no route to %s", ErrUnreachable, dst)
	}
	if n.group[src.name] != n.group[d.name] {
		n.stats.Partitioned++
		return nil, 0, fmt.Errorf("%w: %s is partitioned from %s", ErrUnreachable, dst, src.addr)
	}
	if n.loss > 0 && n.rng.Float64() < n.loss {
		n.stats.Lost++
		return nil, 0, fmt.Errorf("%w: lost", ErrUnreachable)
	}
	delay := n.delay
	if !stream && n.jitter > 0 {
		delay += time.Duration(n.rng.Int64N(int64(n.jitter)))
	}
	if !stream {
		n.stats.Packets++
	}
	return d, delay, nil
}

func (n *Network) connected(a, b *Transport) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	ok := n.group[a.name] == n.group[b.name]
	if !ok {
		n.stats.Partitioned++
	}
	return ok
}

func (n *Network) streamDelay() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delay
}

func (n *Network) remove(t *Transport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byAddr[t.addr] == t {
		delete(n.byAddr, t.addr)
	}
}

func (n *Network) overflow() {
	n.mu.Lock()
	n.stats.Overflow++
	n.mu.Unlock()
}

// Addr is the net.Addr of a Transport.
type Addr struct{ addr string }

// Network returns "meshtest".
func (a Addr) Network() string { return "meshtest" }

// String returns host:port.
func (a Addr) String() string { return a.addr }

// Transport is a memberlist.NodeAwareTransport on a Network. Safe for
// concurrent use; Shutdown makes it unreachable and frees its address.
type Transport struct {
	net      *Network
	name     string
	addr     string
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once

	connMu sync.Mutex
	conns  map[*conn]struct{} // open stream ends owned by this transport
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// track registers c so that Shutdown closes it (like the kernel closing a
// dead process's sockets). It reports false if the transport is shut down.
func (t *Transport) track(c *conn) bool {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	select {
	case <-t.done:
		return false
	default:
	}
	if t.conns == nil {
		t.conns = make(map[*conn]struct{})
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c *conn) {
	t.connMu.Lock()
	delete(t.conns, c)
	t.connMu.Unlock()
}

// Addr returns the transport's address (host:port).
func (t *Transport) Addr() string { return t.addr }

// FinalAdvertiseAddr returns the transport's own address.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, portStr, err := net.SplitHostPort(t.addr)
	if err != nil {
		return nil, 0, err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("meshtest: bad IP %q", host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, 0, err
	}
	return ip, port, nil
}

// WriteTo sends a packet (see WriteToAddress).
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet to a.Addr. Like UDP, packets that are lost,
// partitioned or sent to nobody vanish without an error.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	select {
	case <-t.done:
		return now, errors.New("meshtest: transport shut down")
	default:
	}
	dst, delay, err := t.net.route(t, a.Addr, false)
	if err != nil {
		return now, nil
	}
	buf := make([]byte, len(b))
	copy(buf, b)
	p := &memberlist.Packet{Buf: buf, From: Addr{t.addr}, Timestamp: now}
	if delay <= 0 {
		dst.deliver(p)
	} else {
		time.AfterFunc(delay, func() {
			p.Timestamp = time.Now()
			dst.deliver(p)
		})
	}
	return now, nil
}

func (t *Transport) deliver(p *memberlist.Packet) {
	select {
	case <-t.done:
	case t.packetCh <- p:
	default:
		t.net.overflow()
	}
}

// PacketCh delivers incoming packets.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout opens a stream (see DialAddressTimeout).
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a.Addr. It fails at once if the
// destination does not exist, is partitioned away, or the dial is "lost".
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dst, delay, err := t.net.route(t, a.Addr, true)
	if err != nil {
		return nil, err
	}
	if delay > 0 {
		if timeout > 0 && delay > timeout {
			return nil, fmt.Errorf("%w: dial %s: timeout", ErrUnreachable, a.Addr)
		}
		time.Sleep(delay)
	}
	local, remote := net.Pipe()
	var timer <-chan time.Time
	if timeout > 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		timer = tm.C
	}
	lc := &conn{Conn: local, net: t.net, a: t, b: dst}
	rc := &conn{Conn: remote, net: t.net, a: dst, b: t}
	if t.track(lc) && dst.track(rc) {
		select {
		case dst.streamCh <- rc:
			return lc, nil
		case <-dst.done:
		case <-t.done:
		case <-timer:
		}
	}
	_ = lc.Close()
	_ = rc.Close()
	return nil, fmt.Errorf("%w: dial %s: refused", ErrUnreachable, a.Addr)
}

// StreamCh delivers incoming streams.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown detaches the transport from the network and closes its open
// streams. Safe to call twice.
func (t *Transport) Shutdown() error {
	t.once.Do(func() {
		t.connMu.Lock()
		close(t.done)
		conns := t.conns
		t.conns = nil
		t.connMu.Unlock()
		for c := range conns {
			_ = c.Conn.Close()
		}
		t.net.remove(t)
	})
	return nil
}

// conn is one end of a stream; writes fail once the ends are partitioned
// and are delayed by the network delay.
type conn struct {
	net.Conn
	net  *Network
	a, b *Transport
}

func (c *conn) Write(p []byte) (int, error) {
	if !c.net.connected(c.a, c.b) {
		_ = c.Conn.Close()
		return 0, fmt.Errorf("%w: stream partitioned", ErrUnreachable)
	}
	if d := c.net.streamDelay(); d > 0 {
		time.Sleep(d)
	}
	return c.Conn.Write(p)
}

// Close closes this end of the stream.
func (c *conn) Close() error {
	c.a.untrack(c)
	return c.Conn.Close()
}

// LocalAddr returns the local transport's address.
func (c *conn) LocalAddr() net.Addr { return Addr{c.a.addr} }

// RemoteAddr returns the remote transport's address.
func (c *conn) RemoteAddr() net.Addr { return Addr{c.b.addr} }
