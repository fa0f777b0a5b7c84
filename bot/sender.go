package bot

import (
	"context"
	"time"

	"github.com/lrstanley/girc"
)

// replyMaxAge: a reply that waited longer than this in the queue is stale
// (the asker has moved on, or another bot answered) and is dropped.
const replyMaxAge = 30 * time.Second

// outLine is one queued outgoing line.
type outLine struct {
	ev     *girc.Event
	queued time.Time
	maxAge time.Duration // 0 = never stale
	sess   uint64        // 0 = any session, else only for that session
	reply  string        // for an answer to a channel: the channel
}

// newLine builds a sanitized event: middle parameters lose spaces and
// control characters, the trailing text loses CR/LF/NUL and is cut to the
// line budget on a UTF-8 boundary. It returns nil if a middle parameter is
// empty after sanitizing.
func newLine(command string, params ...string) *girc.Event {
	ev := &girc.Event{Command: command}
	trailing := -1
	switch command {
	case girc.PRIVMSG, girc.NOTICE, girc.PART:
		trailing = 1
	case girc.QUIT:
		trailing = 0
	}
	for i, p := range params {
		if i == trailing {
			first := ""
			if i > 0 {
				first = ev.Params[0]
			}
			p = SanitizeText(p, textBudget(command, first))
		} else if p = sanitizeParam(p); p == "" {
			return nil
		}
		ev.Params = append(ev.Params, p)
	}
	return ev
}

func (b *Bot) enqueue(q chan outLine, l outLine) bool {
	if l.ev == nil {
		return false
	}
	l.queued = time.Now()
	select {
	case q <- l:
		return true
	default:
		b.stats.full.Add(1)
		b.log.Warn("send queue full, line dropped", "command", l.ev.Command)
		return false
	}
}

// enqueueMsg queues a PRIVMSG; reply lines get a maximum queue age.
func (b *Bot) enqueueMsg(target, text string, reply bool) {
	l := outLine{ev: newLine(girc.PRIVMSG, target, text)}
	if reply {
		l.maxAge = replyMaxAge
		if isChannelName(target) {
			l.reply = ircLower(target)
		}
	}
	b.enqueue(b.msgQ, l)
}

// notePart records that we decided to leave ch: answers to ch still queued
// were decided while we served it and must not go out any more.
func (b *Bot) notePart(ch string, now time.Time) {
	b.partMu.Lock()
	defer b.partMu.Unlock()
	if b.partedAt == nil {
		b.partedAt = map[string]time.Time{}
	}
	b.partedAt[ircLower(ch)] = now
}

// staleReply reports whether a queued answer must be dropped: it was queued
// before we decided to leave its channel, or before a long freeze (the next
// bot has answered that backlog).
func (b *Bot) staleReply(l outLine) bool {
	if l.maxAge == 0 {
		return false
	}
	if b.mono(l.queued) < b.longFrozeAt.Load() {
		return true
	}
	if l.reply == "" {
		return false
	}
	b.partMu.Lock()
	defer b.partMu.Unlock()
	t, ok := b.partedAt[l.reply]
	return ok && !l.queued.After(t)
}

// enqueueCtrl queues a control line (JOIN, PART, PING, NICK) for session
// sess; control lines go before messages.
func (b *Bot) enqueueCtrl(sess uint64, command string, params ...string) {
	b.enqueue(b.ctrlQ, outLine{ev: newLine(command, params...), sess: sess})
}

// current returns the connected client and its session, or nil.
func (b *Bot) current() (*girc.Client, uint64) {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if b.client == nil || b.regSess.Load() != b.sessID {
		return nil, 0
	}
	return b.client, b.sessID
}

// sendLoop is the only writer of queued lines. It takes a token from the
// bucket for every line, so the bot stays far below the server's flood
// limits; girc's own flood control is off (AllowFlood), so girc's Send never
// sleeps.
func (b *Bot) sendLoop(ctx context.Context) {
	bucket := newTokenBucket(b.cfg.SendRate, b.cfg.SendBurst, time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var l outLine
		select {
		case l = <-b.ctrlQ:
		default:
			select {
			case l = <-b.ctrlQ:
			case l = <-b.msgQ:
			case <-ctx.Done():
				return
			}
		}
		if !b.sendable(l) {
			continue
		}
		// PING (the lag probe, one per PingInterval) skips the bucket so
		// that the measured lag is the server's, not our queue's.
		for l.ev.Command != girc.PING {
			d := bucket.take(time.Now())
			if d == 0 {
				break
			}
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		if !b.sendable(l) {
			continue
		}
		gc, _ := b.current()
		if gc == nil {
			b.stats.offline.Add(1)
			continue
		}
		fitLine(l.ev, gc.MaxEventLength())
		gc.Send(l.ev)
		b.stats.sent.Add(1)
	}
}

func (b *Bot) sendable(l outLine) bool {
	_, sess := b.current()
	if sess == 0 || (l.sess != 0 && l.sess != sess) {
		b.stats.offline.Add(1)
		return false
	}
	if l.maxAge > 0 && time.Since(l.queued) > l.maxAge || b.staleReply(l) {
		b.stats.stale.Add(1)
		return false
	}
	return true
}

// fitLine cuts the trailing text of a PRIVMSG/NOTICE so that girc, whose
// limit is max bytes (the server's line length minus the longest prefix the
// server may add), never splits it into a second line.
func fitLine(ev *girc.Event, max int) {
	if ev.Command != girc.PRIVMSG && ev.Command != girc.NOTICE || len(ev.Params) < 2 || max <= 0 {
		return
	}
	last := len(ev.Params) - 1
	for i := 0; i < 4 && ev.LenOpts(false) >= max; i++ {
		over := ev.LenOpts(false) - max + 1
		p := ev.Params[last]
		if over >= len(p) {
			ev.Params[last] = ""
			return
		}
		ev.Params[last] = TruncateUTF8(p, len(p)-over)
	}
}
