package chaos

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// RetransmitPenalty is what a "lost" TCP chunk costs: TCP cannot lose bytes
// without breaking the stream, so a chunk that the loss probability picks is
// delivered this much later instead, like a retransmission after a timeout.
const RetransmitPenalty = 200 * time.Millisecond

// tcpDialTimeout bounds the proxy's upstream TCP dial.
const tcpDialTimeout = 2 * time.Second

// ErrProxyClosed is returned by methods of a closed Proxy.
var ErrProxyClosed = errors.New("proxy closed")

// Faults are the impairments a [Proxy] applies, in each direction, to every
// UDP packet and every TCP chunk it relays. The zero value relays at once
// and drops nothing.
type Faults struct {
	// Delay is added to every packet or chunk in each direction, so a
	// request/response round trip gets 2×Delay. 0 = none.
	Delay time.Duration
	// Jitter adds a uniformly random 0..Jitter on top of Delay. UDP packets
	// may be reordered by it; TCP chunks never are (each chunk leaves no
	// earlier than the one before it). 0 = none.
	Jitter time.Duration
	// Loss is the probability (0..1) that a UDP packet is dropped. A TCP
	// chunk picked by it is delayed by RetransmitPenalty instead. 0 = none.
	Loss float64
}

// Validate reports a fault setting that makes no sense.
func (f Faults) Validate() error {
	switch {
	case f.Delay < 0:
		return fmt.Errorf("faults: negative delay %s", f.Delay)
	case f.Jitter < 0:
		return fmt.Errorf("faults: negative jitter %s", f.Jitter)
	case f.Loss < 0 || f.Loss > 1 || f.Loss != f.Loss:
		return fmt.Errorf("faults: loss %v: want a probability between 0 and 1", f.Loss)
	}
	return nil
}

// ProxyConfig configures a Proxy. Only Listen is required.
type ProxyConfig struct {
	// Listen is "IP:port" for both the UDP and the TCP listener. Port 0
	// picks a port that is free for both. Required.
	Listen string
	// Target is the upstream "host:port" (UDP and TCP). "" = traffic is
	// dropped (UDP) or refused (TCP) until SetTarget.
	Target string
	// Allow decides, by source IP, whether a UDP packet or TCP connection
	// arriving at Listen is relayed. Packets and connections it rejects are
	// dropped and counted in ProxyStats.Filtered. It must be safe for
	// concurrent use and must not block. nil = every source.
	Allow func(ip net.IP) bool
	// Seed seeds the random source for jitter and loss, so a test can
	// reproduce a run. 0 = seeded from the clock.
	Seed uint64
	// Logger receives debug lines about sessions and errors. nil = discard.
	Logger *slog.Logger
}

// ProxyStats counts what a Proxy did since it started.
type ProxyStats struct {
	UDPIn        int64 // UDP packets accepted from clients (after Allow)
	UDPOut       int64 // UDP packets relayed back from the target to clients
	UDPDropped   int64 // UDP packets dropped by Loss, either direction
	NoTarget     int64 // UDP packets or TCP connections dropped for want of a target
	Filtered     int64 // UDP packets and TCP connections rejected by Allow
	TCPConns     int64 // TCP connections relayed
	TCPBytes     int64 // TCP bytes relayed, both directions
	TCPPenalties int64 // TCP chunks delayed by RetransmitPenalty
}

// Proxy is a user-space UDP+TCP relay that adds delay, jitter and loss and
// filters sources, standing in for netem on kernels that lack it. Every
// memberlist packet for one node goes through that node's proxy when the
// node advertises the proxy's address.
//
// UDP: each client source address gets its own upstream socket, so the
// target sees one distinct peer per client and its replies go back to the
// right client. TCP: each accepted connection is relayed to a new upstream
// connection, stream order preserved.
//
// All methods are safe for concurrent use and do not block on the network.
// Close stops every goroutine the Proxy started.
type Proxy struct {
	cfg ProxyConfig
	log *slog.Logger
	udp *net.UDPConn
	tcp *net.TCPListener

	mu       sync.Mutex
	faults   Faults
	rnd      *rand.Rand
	target   string
	udpAddr  *net.UDPAddr
	sessions map[string]*udpSession
	conns    map[net.Conn]struct{}
	closed   bool

	line *delayLine // UDP packets in both directions
	done chan struct{}
	wg   sync.WaitGroup

	udpIn, udpOut, udpDropped, noTarget, filtered atomic.Int64
	tcpConns, tcpBytes, tcpPenalties              atomic.Int64
}

// udpSession is the upstream socket of one UDP client.
type udpSession struct {
	client *net.UDPAddr
	up     *net.UDPConn
}

// NewProxy listens on cfg.Listen (UDP and TCP, same port) and starts
// relaying to cfg.Target.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Listen == "" {
		return nil, errors.New("proxy: listen address is empty")
	}
	p := &Proxy{
		cfg:      cfg,
		log:      cfg.Logger,
		sessions: make(map[string]*udpSession),
		conns:    make(map[net.Conn]struct{}),
		done:     make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("component", "proxy", "listen", cfg.Listen)
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	p.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if cfg.Target != "" {
		if err := p.SetTarget(cfg.Target); err != nil {
			return nil, err
		}
	}
	if err := p.listen(cfg.Listen); err != nil {
		return nil, err
	}
	p.line = newDelayLine()
	p.wg.Add(2)
	go p.udpLoop()
	go p.tcpLoop()
	return p, nil
}

// listen binds UDP and TCP on the same port; with port 0 it retries until
// the port the UDP socket got is also free for TCP.
func (p *Proxy) listen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("proxy: listen address %q: %w", addr, err)
	}
	for range 20 {
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return fmt.Errorf("proxy: listen udp %s: %w", addr, err)
		}
		uc := u.(*net.UDPConn)
		la := uc.LocalAddr().(*net.UDPAddr)
		l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(la.Port)))
		if err != nil {
			uc.Close()
			if port == "0" {
				continue // the UDP port is taken for TCP; pick another
			}
			return fmt.Errorf("proxy: listen tcp %s: %w", addr, err)
		}
		p.udp, p.tcp = uc, l.(*net.TCPListener)
		return nil
	}
	return fmt.Errorf("proxy: no port free for both UDP and TCP on %s", host)
}

// Addr returns the "IP:port" the proxy listens on (UDP and TCP).
func (p *Proxy) Addr() string { return p.udp.LocalAddr().String() }

// Port returns the port the proxy listens on.
func (p *Proxy) Port() int { return p.udp.LocalAddr().(*net.UDPAddr).Port }

// SetTarget changes the upstream address. UDP sessions to the old target
// are closed (new ones are made on the next packet); TCP connections
// already relayed keep their upstream.
func (p *Proxy) SetTarget(target string) error {
	ua, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return fmt.Errorf("proxy: target %q: %w", target, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrProxyClosed
	}
	if p.target == target {
		return nil
	}
	p.target, p.udpAddr = target, ua
	for k, s := range p.sessions {
		s.up.Close()
		delete(p.sessions, k)
	}
	return nil
}

// Target returns the current upstream address ("" if none).
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// SetFaults replaces the impairments; they apply to packets and chunks
// read from now on.
func (p *Proxy) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
	return nil
}

// Faults returns the current impairments.
func (p *Proxy) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Stats returns the counters.
func (p *Proxy) Stats() ProxyStats {
	return ProxyStats{
		UDPIn: p.udpIn.Load(), UDPOut: p.udpOut.Load(), UDPDropped: p.udpDropped.Load(),
		NoTarget: p.noTarget.Load(), Filtered: p.filtered.Load(),
		TCPConns: p.tcpConns.Load(), TCPBytes: p.tcpBytes.Load(), TCPPenalties: p.tcpPenalties.Load(),
	}
}

// Close stops the listeners, every session and connection, and waits for
// the proxy's goroutines. Packets still waiting out their delay are
// dropped. Close is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.udp.Close()
	p.tcp.Close()
	for k, s := range p.sessions {
		s.up.Close()
		delete(p.sessions, k)
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.line.close()
	return nil
}

// plan decides the fate of one packet or chunk: whether it is lost and,
// if not, how long it waits.
func (p *Proxy) plan() (lost bool, wait time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults
	if f.Loss > 0 && p.rnd.Float64() < f.Loss {
		lost = true
	}
	wait = f.Delay
	if f.Jitter > 0 {
		wait += time.Duration(p.rnd.Int64N(int64(f.Jitter) + 1))
	}
	return lost, wait
}

func (p *Proxy) allowed(addr net.Addr) bool {
	if p.cfg.Allow == nil {
		return true
	}
	var ip net.IP
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	}
	return p.cfg.Allow(ip)
}

func (p *Proxy) udpLoop() {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, src, err := p.udp.ReadFromUDP(buf)
		if err != nil {
			if p.isClosed() {
				return
			}
			p.log.Debug("udp read", "err", err)
			continue
		}
		if !p.allowed(src) {
			p.filtered.Add(1)
			continue
		}
		p.udpIn.Add(1)
		s := p.session(src)
		if s == nil {
			p.noTarget.Add(1)
			continue
		}
		lost, wait := p.plan()
		if lost {
			p.udpDropped.Add(1)
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		p.line.push(time.Now().Add(wait), func() { _, _ = s.up.Write(pkt) })
	}
}

// session returns the upstream socket for client src, creating it and its
// reader on first use; nil if there is no target or the proxy is closed.
func (p *Proxy) session(src *net.UDPAddr) *udpSession {
	key := src.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.udpAddr == nil {
		return nil
	}
	if s, ok := p.sessions[key]; ok {
		return s
	}
	up, err := net.DialUDP("udp", nil, p.udpAddr)
	if err != nil {
		p.log.Debug("udp dial", "target", p.target, "err", err)
		return nil
	}
	s := &udpSession{client: src, up: up}
	p.sessions[key] = s
	p.wg.Add(1)
	go p.udpReturn(s)
	return s
}

// udpReturn relays the target's replies on one session back to its client.
func (p *Proxy) udpReturn(s *udpSession) {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := s.up.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP port unreachable while the target restarts: keep going.
			continue
		}
		lost, wait := p.plan()
		if lost {
			p.udpDropped.Add(1)
			continue
		}
		p.udpOut.Add(1)
		pkt := append([]byte(nil), buf[:n]...)
		p.line.push(time.Now().Add(wait), func() { _, _ = p.udp.WriteToUDP(pkt, s.client) })
	}
}

func (p *Proxy) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Proxy) tcpLoop() {
	defer p.wg.Done()
	for {
		c, err := p.tcp.Accept()
		if err != nil {
			if p.isClosed() {
				return
			}
			p.log.Debug("tcp accept", "err", err)
			select {
			case <-p.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if !p.allowed(c.RemoteAddr()) {
			p.filtered.Add(1)
			c.Close()
			continue
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		if target == "" {
			p.noTarget.Add(1)
			c.Close()
			continue
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.relay(c, target)
	}
}

// track registers a connection so Close can close it; false if closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// relay connects to target and pipes both directions until both are done.
func (p *Proxy) relay(client net.Conn, target string) {
	defer p.wg.Done()
	defer p.untrack(client)
	defer client.Close()
	d := net.Dialer{Timeout: tcpDialTimeout}
	up, err := d.Dial("tcp", target)
	if err != nil {
		p.log.Debug("tcp dial", "target", target, "err", err)
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	defer up.Close()
	p.tcpConns.Add(1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, client) }()
	go func() { defer wg.Done(); p.pipe(client, up) }()
	wg.Wait()
}

type chunk struct {
	at   time.Time
	data []byte
}

// pipe copies src to dst, holding every chunk for its planned delay, in
// order. At EOF of src it half-closes dst after the last chunk; on any
// error it closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	ch := make(chan chunk, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for c := range ch {
			if d := time.Until(c.at); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-p.done:
					dst.Close()
					src.Close()
					for range ch { // let the reader finish
					}
					return
				}
			}
			if _, err := dst.Write(c.data); err != nil {
				dst.Close()
				src.Close()
				for range ch {
				}
				return
			}
			p.tcpBytes.Add(int64(len(c.data)))
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	var last time.Time
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			lost, wait := p.plan()
			if lost {
				wait += RetransmitPenalty
				p.tcpPenalties.Add(1)
			}
			at := time.Now().Add(wait)
			if at.Before(last) {
				at = last
			}
			last = at
			ch <- chunk{at: at, data: append([]byte(nil), buf[:n]...)}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				src.Close()
			}
			break
		}
	}
	close(ch)
	<-done
}

// delayLine runs functions at their due time, earliest first (ties in push
// order), on one goroutine. It is safe for concurrent use.
type delayLine struct {
	mu    sync.Mutex
	items delayHeap
	seq   uint64
	wake  chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

type delayItem struct {
	at  time.Time
	seq uint64
	fn  func()
}

type delayHeap []delayItem

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(delayItem)) }
func (h *delayHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newDelayLine() *delayLine {
	d := &delayLine{wake: make(chan struct{}, 1), done: make(chan struct{})}
	d.wg.Add(1)
	go d.run()
	return d
}

// push schedules fn at time at.
func (d *delayLine) push(at time.Time, fn func()) {
	d.mu.Lock()
	d.seq++
	heap.Push(&d.items, delayItem{at: at, seq: d.seq, fn: fn})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// close stops the goroutine; pending functions are dropped.
func (d *delayLine) close() {
	d.once.Do(func() { close(d.done) })
	d.wg.Wait()
}

func (d *delayLine) run() {
	defer d.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due []func()
		wait := time.Hour
		d.mu.Lock()
		now := time.Now()
		for d.items.Len() > 0 && !d.items[0].at.After(now) {
			due = append(due, heap.Pop(&d.items).(delayItem).fn)
		}
		if d.items.Len() > 0 {
			wait = d.items[0].at.Sub(now)
		}
		d.mu.Unlock()
		for _, fn := range due {
			fn()
		}
		if len(due) > 0 {
			continue // time passed while running them; look again
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-d.wake:
		case <-d.done:
			return
		}
	}
}
