package bot

import (
	"context"
	"time"

	"github.com/lrstanley/girc"
)

// Handoff is the SIGTERM path. The lead calls it after it announced
// "leaving" in gossip. The bot stops taking new questions except in
// channels where the successor is not present yet, waits until in every
// served channel the successor's nick is present (or HandoffTimeout, or ctx
// is done), then parts the channels and quits once the queued replies are
// written. Run then returns nil instead of reconnecting. Handoff blocks; it
// returns nil also when the bot is not running.
func (b *Bot) Handoff(ctx context.Context) error {
	ready := make(chan struct{})
	if !b.request(ctx, func(ls *loopState) {
		ls.draining = true
		// The lead may already have a view where another node is active
		// (we announced leaving); we were the active one if we were
		// recently. A standby that drains stays silent.
		ls.drainActive = ls.isActive() || (!ls.lastActiveAt.IsZero() && time.Since(ls.lastActiveAt) < b.cfg.HandoffTimeout)
		ls.waiters = append(ls.waiters, ready)
	}) {
		return ctx.Err()
	}
	b.log.Info("handoff: draining")
	t := time.NewTimer(b.cfg.HandoffTimeout)
	defer t.Stop()
	select {
	case <-ready:
		b.log.Info("handoff: successor present in all channels")
	case <-t.C:
		b.log.Warn("handoff: timeout waiting for the successor")
	case <-ctx.Done():
	}
	b.quitting.Store(true)
	// PART and QUIT go through the message queue, behind the replies
	// already queued, so no answer is lost.
	var sess uint64
	bg := context.WithoutCancel(ctx) // the lines must be queued even if ctx ended
	b.request(bg, func(ls *loopState) {
		sess = ls.sess
		if !ls.connected {
			return
		}
		for f, ch := range ls.joined {
			if f == ircLower(b.cfg.BotChannel) || f == ircLower(b.cfg.RelayChannel) {
				continue
			}
			b.putMsg(bg, outLine{ev: newLine(girc.PART, ch, "handoff")})
		}
		b.putMsg(bg, outLine{ev: newLine(girc.QUIT, "handoff")})
	})
	// Wait until the session ended (the sender wrote QUIT and girc closed).
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	deadline := time.NewTimer(b.cfg.HandoffTimeout)
	defer deadline.Stop()
	for {
		b.connMu.Lock()
		ended := b.client == nil || b.sessID != sess
		gc := b.client
		b.connMu.Unlock()
		if ended {
			return nil
		}
		select {
		case <-poll.C:
		case <-deadline.C:
			gc.Close()
			return nil
		case <-ctx.Done():
			gc.Close()
			return nil
		}
	}
}

// putMsg queues l on the message queue, waiting for room (up to ctx).
func (b *Bot) putMsg(ctx context.Context, l outLine) {
	l.queued = time.Now()
	select {
	case b.msgQ <- l:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		b.stats.full.Add(1)
		b.log.Warn("send queue full, line dropped", "command", l.ev.Command)
	}
}
