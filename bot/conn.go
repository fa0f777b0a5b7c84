package bot

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/lrstanley/girc"
)

const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
	// evSessionEnd is a synthetic event pushed when a connection attempt ends.
	evSessionEnd = "MESHBOT_SESSION_END"
	tickEvery    = 100 * time.Millisecond
	freezeGap    = time.Second
)

// ircEvent is an event from the girc client of session sess.
type ircEvent struct {
	sess uint64
	ev   girc.Event
}

// Run connects and serves until ctx is done, Close is called or a Handoff
// finished. Servers are tried in order with backoff (1 s doubling to 30 s,
// reset after a successful registration). It returns nil on ctx cancel.
func (b *Bot) Run(ctx context.Context) error {
	b.runMu.Lock()
	if b.closed {
		b.runMu.Unlock()
		return ErrClosed
	}
	if b.running {
		b.runMu.Unlock()
		return ErrRunning
	}
	b.running = true
	ctx, cancel := context.WithCancel(ctx)
	b.cancel = cancel
	done := make(chan struct{})
	b.runDone = done
	b.runMu.Unlock()

	b.lastTick.Store(b.mono(time.Now()))
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		b.runMu.Lock()
		b.running = false
		b.cancel = nil
		close(done)
		b.runMu.Unlock()
	}()
	wg.Add(3)
	go func() { defer wg.Done(); b.tickLoop(ctx) }()
	go func() { defer wg.Done(); b.sendLoop(ctx) }()
	go func() { defer wg.Done(); b.eventLoop(ctx) }()

	backoff := backoffMin
	idx := 0
	for {
		if ctx.Err() != nil || b.quitting.Load() {
			return nil
		}
		server := b.cfg.Servers[idx%len(b.cfg.Servers)]
		registered, err := b.session(ctx, server)
		if ctx.Err() != nil || b.quitting.Load() {
			return nil
		}
		if registered {
			backoff = backoffMin
			idx = 0
		} else {
			idx++
		}
		b.log.Warn("irc connection ended", "server", server, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if !registered {
			backoff = min(backoff*2, backoffMax)
		}
	}
}

type ctxDialer struct {
	ctx  context.Context
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (d ctxDialer) Dial(network, addr string) (net.Conn, error) { return d.dial(d.ctx, network, addr) }

// session runs one connection attempt to server. It reports whether the
// server registered us (RPL_WELCOME).
func (b *Bot) session(ctx context.Context, server string) (bool, error) {
	host, port, err := splitServer(server)
	if err != nil {
		return false, err
	}
	gcfg := girc.Config{
		Server:                host,
		Port:                  port,
		Nick:                  b.cfg.Nick,
		User:                  b.cfg.User,
		Name:                  b.cfg.RealName,
		SSL:                   b.cfg.TLS,
		AllowFlood:            true, // our sender owns flood control; girc's Send must never sleep
		PingDelay:             -1,   // our own lag probe replaces girc's ping loop
		DisableAutoWHOOnJoin:  true,
		DisableAutoMODEOnJoin: true,
		DisableSTS:            true,
	}
	if b.cfg.TLS {
		gcfg.TLSConfig = &tls.Config{ServerName: host, InsecureSkipVerify: b.cfg.TLSInsecureSkipVerify} //nolint:gosec // tests only, documented
	}
	if b.cfg.SASLUser != "" {
		gcfg.SASL = &girc.SASLPlain{User: b.cfg.SASLUser, Pass: b.cfg.SASLPassword}
	}
	b.connMu.Lock()
	b.sessID++
	sid := b.sessID
	b.connMu.Unlock()
	// Before registration a taken nick gets "_" appended; afterwards a failed
	// attempt to regain our nick must not rename us again.
	gcfg.HandleNickCollide = func(old string) string {
		if b.regSess.Load() == sid {
			return ""
		}
		return old + "_"
	}
	gc := girc.New(gcfg)
	gc.CTCP.ClearAll() // no automatic CTCP replies: they would bypass our flood control
	gc.Handlers.Add(girc.ALL_EVENTS, func(_ *girc.Client, e girc.Event) {
		// Normal (non-background) handlers run one event at a time, in order.
		b.push(ctx, ircEvent{sess: sid, ev: e})
	})
	b.connMu.Lock()
	b.client = gc
	b.connMu.Unlock()

	dial := b.cfg.Dial
	if dial == nil {
		nd := &net.Dialer{Timeout: 10 * time.Second}
		dial = nd.DialContext
	}
	errC := make(chan error, 1)
	go func() { errC <- gc.DialerConnect(ctxDialer{ctx: ctx, dial: dial}) }()
	select {
	case err = <-errC:
	case <-ctx.Done():
		gc.Send(newLine(girc.QUIT, "shutting down"))
		t := time.NewTimer(2 * time.Second)
		select {
		case err = <-errC:
		case <-t.C:
			gc.Close()
			err = <-errC
		}
		t.Stop()
	}
	registered := b.regSess.Load() == sid
	b.connMu.Lock()
	if b.client == gc {
		b.client = nil
	}
	b.connMu.Unlock()
	b.push(ctx, ircEvent{sess: sid, ev: girc.Event{Command: evSessionEnd}})
	return registered, err
}

// push hands an event to the event loop, in order.
func (b *Bot) push(ctx context.Context, e ircEvent) {
	select {
	case b.evC <- e:
	case <-ctx.Done():
	}
}

// tickLoop records a tick every 100 ms; a gap of more than 1 s means the
// process was frozen (SIGSTOP, VM pause) and questions that arrive now are
// backlog.
func (b *Bot) tickLoop(ctx context.Context) {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := time.Now()
			if gap := b.mono(now) - b.lastTick.Load(); gap > int64(freezeGap) {
				backlog := "hedged"
				if time.Duration(gap) >= b.longFreeze() {
					backlog = "dropped"
				}
				b.log.Warn("process freeze detected", "gap", time.Duration(gap), "backlog", backlog)
				b.markFreeze(now, time.Duration(gap))
			}
			b.lastTick.Store(b.mono(now))
		}
	}
}
