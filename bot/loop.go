package bot

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lrstanley/girc"
)

const (
	loopTick        = 50 * time.Millisecond // hedge deadline resolution
	rejoinAfter     = 15 * time.Second      // resend an unanswered JOIN/PART
	channelsRefresh = time.Minute           // re-read Store.Channels() anyway
	dbErrorEvery    = time.Minute           // at most one db error announcement per minute
)

// question is a hedged question waiting for its deadline.
type question struct {
	channel  string
	cmd      Command
	m        msgCtx
	hedge    []string
	deadline time.Time
	stall    bool // backlog of a short stall: wait out the deadline unless no other bot is present
}

// loopState is owned by the event loop goroutine; nothing else touches it.
type loopState struct {
	b    *Bot
	pres *presence
	fx   *factoids

	sess      uint64
	connected bool
	server    string
	nick      string
	view      View

	served     []string // channels from Store.Channels(), validated
	lastChans  time.Time
	joined     map[string]string // folded -> name
	joinSent   map[string]time.Time
	partSent   map[string]time.Time
	leaveSince map[string]time.Time

	pending []*question

	draining     bool // Handoff in progress
	drainActive  bool // we were the active node when Handoff began (else we stay silent)
	lastActiveAt time.Time
	waiters      []chan struct{}

	pingToken string
	pingSent  time.Time
	pingSeq   int
	lastPing  time.Time
	lag       time.Duration

	lastState  State
	stateSent  bool
	lastDBErr  time.Time
	lastHouse  time.Time
	regainSent time.Time
}

func (b *Bot) newLoopState() *loopState {
	ls := &loopState{
		b:          b,
		pres:       newPresence(),
		joined:     map[string]string{},
		joinSent:   map[string]time.Time{},
		partSent:   map[string]time.Time{},
		leaveSince: map[string]time.Time{},
		nick:       b.cfg.Nick,
	}
	ls.fx = newFactoids(&b.cfg, ls.dbError)
	ls.view = b.getView()
	if ls.isActive() {
		ls.lastActiveAt = time.Now()
	}
	b.chanDirty.Store(true)
	return ls
}

// eventLoop is the bot's single-threaded core: IRC events, view changes,
// requests and timers are handled one at a time, in order.
func (b *Bot) eventLoop(ctx context.Context) {
	ls := b.newLoopState()
	ls.publishState()
	t := time.NewTicker(loopTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, w := range ls.waiters {
				close(w)
			}
			return
		case e := <-b.evC:
			ls.handleIRC(e)
		case <-b.wake:
			ls.refresh()
		case f := <-b.reqC:
			f(ls)
		case now := <-t.C:
			ls.tick(now)
		}
		ls.after()
	}
}

// request runs f on the event loop and waits for it; false if the loop is
// not running.
func (b *Bot) request(ctx context.Context, f func(*loopState)) bool {
	b.runMu.Lock()
	done := b.runDone
	running := b.running
	b.runMu.Unlock()
	if !running {
		return false
	}
	fin := make(chan struct{})
	select {
	case b.reqC <- func(ls *loopState) { f(ls); close(fin) }:
	case <-ctx.Done():
		return false
	case <-done:
		return false
	}
	select {
	case <-fin:
		return true
	case <-ctx.Done():
	case <-done:
	}
	return false
}

func (ls *loopState) dbError(err error) {
	ls.b.log.Error("factoid store error", "err", err)
	now := time.Now()
	if now.Sub(ls.lastDBErr) >= dbErrorEvery {
		ls.lastDBErr = now
		ls.b.Announce("database error: " + err.Error())
	}
}

func (ls *loopState) refresh() {
	ls.view = ls.b.getView()
	if ls.isActive() {
		ls.lastActiveAt = time.Now()
	}
	if ls.b.chanDirty.Swap(false) {
		ls.loadChannels()
	}
	if ls.b.resumedFlag.Swap(false) {
		ls.dropPending("freeze")
	}
	ls.checkPending()
}

func (ls *loopState) loadChannels() {
	chans, err := ls.b.cfg.Store.Channels()
	ls.lastChans = time.Now()
	if err != nil {
		ls.dbError(err)
		return
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range chans {
		c = strings.TrimSpace(c)
		if !girc.IsValidChannel(c) || strings.ContainsAny(c, ", \x07") {
			ls.b.log.Warn("ignoring invalid channel name", "channel", c)
			continue
		}
		f := ircLower(c)
		if seen[f] || f == ircLower(ls.b.cfg.BotChannel) || f == ircLower(ls.b.cfg.RelayChannel) {
			continue
		}
		seen[f] = true
		out = append(out, c)
	}
	ls.served = out
}

func (ls *loopState) dropPending(why string) {
	if len(ls.pending) > 0 {
		ls.b.stats.stale.Add(int64(len(ls.pending)))
		ls.b.log.Info("dropping pending questions", "n", len(ls.pending), "why", why)
	}
	ls.pending = nil
}

func (ls *loopState) isBot(nick string) bool {
	for _, p := range ls.view.Order {
		if p.Name != ls.view.Self && p.Nick != "" && nickEqual(p.Nick, nick) {
			return true
		}
	}
	return false
}

// otherBotsIn lists the nicks of the other known bots present in ch.
func (ls *loopState) otherBotsIn(ch string) []string {
	var out []string
	for _, p := range ls.view.Order {
		if p.Name != ls.view.Self && p.Nick != "" && !nickEqual(p.Nick, ls.nick) && ls.pres.present(ch, p.Nick) {
			out = append(out, p.Nick)
		}
	}
	return out
}

func isChannelName(s string) bool { return s != "" && strings.ContainsRune("#&+!", rune(s[0])) }

func (ls *loopState) handleIRC(ie ircEvent) {
	b := ls.b
	e := ie.ev
	if ie.sess != ls.sess {
		if e.Command != girc.RPL_WELCOME && e.Command != girc.INITIALIZED {
			return // a previous connection
		}
		ls.sess = ie.sess
	}
	src := e.Source
	switch e.Command {
	case girc.RPL_WELCOME:
		ls.connected = true
		if len(e.Params) > 0 && e.Params[0] != "" {
			ls.nick = e.Params[0]
		}
		ls.server = ""
		b.connMu.Lock()
		if b.sessID == ie.sess && b.client != nil {
			ls.server = b.client.Config.Server + ":" + strconv.Itoa(b.client.Config.Port)
		}
		b.connMu.Unlock()
		ls.pres.reset()
		clear(ls.joined)
		clear(ls.joinSent)
		clear(ls.partSent)
		ls.pingToken, ls.lag = "", 0
		b.regSess.Store(ie.sess)
		b.stats.connects.Add(1)
		b.log.Info("irc registered", "server", ls.server, "nick", ls.nick)
		ls.loadChannels()
	case evSessionEnd, girc.DISCONNECTED, girc.CLOSED:
		if ls.connected {
			b.log.Warn("irc disconnected", "server", ls.server)
		}
		ls.connected = false
		ls.pres.reset()
		clear(ls.joined)
		clear(ls.joinSent)
		clear(ls.partSent)
		ls.pingToken = ""
		ls.dropPending("disconnected")
	case girc.NICK:
		if src == nil || len(e.Params) == 0 {
			return
		}
		newNick := e.Last()
		if nickEqual(src.Name, ls.nick) {
			ls.nick = newNick
		}
		ls.pres.rename(src.Name, newNick)
		ls.checkPending()
		ls.maybeRegain(src.Name)
	case girc.JOIN:
		if src == nil || len(e.Params) == 0 {
			return
		}
		ch := e.Params[0]
		if nickEqual(src.Name, ls.nick) {
			ls.joined[ircLower(ch)] = ch
			delete(ls.joinSent, ircLower(ch))
			ls.pres.selfJoined(ch, ls.nick)
		} else {
			ls.pres.join(ch, src.Name)
		}
		if len(e.Params) >= 2 { // extended-join: JOIN #chan account :realname
			ls.pres.setAccount(src.Name, e.Params[1])
		}
		if acc, ok := e.Tags.Get("account"); ok {
			ls.pres.setAccount(src.Name, acc)
		}
	case girc.PART:
		if src == nil || len(e.Params) == 0 {
			return
		}
		ls.left(e.Params[0], src.Name)
	case girc.KICK:
		if len(e.Params) < 2 {
			return
		}
		if nickEqual(e.Params[1], ls.nick) {
			ls.joinSent[ircLower(e.Params[0])] = time.Now() // rejoin after rejoinAfter, not at once
			by := ""
			if src != nil {
				by = src.Name
			}
			b.log.Warn("kicked", "channel", e.Params[0], "by", by)
		}
		ls.left(e.Params[0], e.Params[1])
	case girc.QUIT:
		if src == nil {
			return
		}
		ls.pres.quit(src.Name)
		ls.checkPending()
		ls.maybeRegain(src.Name)
	case girc.RPL_NAMREPLY:
		if len(e.Params) >= 3 {
			ls.pres.names(e.Params[len(e.Params)-2], e.Last())
		}
	case "ACCOUNT": // account-notify
		if src != nil && len(e.Params) > 0 {
			ls.pres.setAccount(src.Name, e.Params[0])
		}
	case girc.PONG:
		if ls.pingToken != "" && e.Last() == ls.pingToken {
			if b.mono(ls.pingSent) >= b.lastFreeze.Load() {
				ls.lag = time.Since(ls.pingSent)
				b.stats.lag.Store(ls.lag.Milliseconds())
			}
			ls.pingToken = ""
		}
	case girc.PRIVMSG, girc.NOTICE:
		ls.onMessage(e)
	case girc.ERROR:
		b.log.Warn("irc error from server", "msg", e.Last())
	}
}

func (ls *loopState) left(ch, nick string) {
	if nickEqual(nick, ls.nick) {
		delete(ls.joined, ircLower(ch))
		delete(ls.partSent, ircLower(ch))
		ls.pres.selfLeft(ch)
		// questions there cannot be answered any more
		ls.pending = slices.DeleteFunc(ls.pending, func(q *question) bool { return nickEqual(q.channel, ch) })
		return
	}
	ls.pres.part(ch, nick)
	ls.checkPending()
}

// maybeRegain asks for our configured nick back when its holder left it.
func (ls *loopState) maybeRegain(gone string) {
	cfgNick := ls.b.cfg.Nick
	if !ls.connected || nickEqual(ls.nick, cfgNick) || !nickEqual(gone, cfgNick) {
		return
	}
	if time.Since(ls.regainSent) < 5*time.Second {
		return
	}
	ls.regainSent = time.Now()
	ls.b.enqueueCtrl(ls.sess, girc.NICK, cfgNick)
}

func (ls *loopState) onMessage(e girc.Event) {
	b := ls.b
	src := e.Source
	if src == nil || len(e.Params) < 2 {
		return
	}
	target := e.Params[0]
	isChan := isChannelName(target)
	if isChan {
		ls.noteSpoke(target, src.Name)
	}
	if e.Command != girc.PRIVMSG || nickEqual(src.Name, ls.nick) || ls.isBot(src.Name) {
		return
	}
	text := cleanInput(e.Last())
	pc := ParseContext{BotNick: ls.nick, Prefix: b.cfg.Prefix, Sender: src.Name}
	if isChan {
		pc.Channel = target
	}
	cmd, ok := Parse(text, pc)
	if !ok {
		return
	}
	var d Decision
	if isChan {
		if d = ls.decide(target); d.Action == Silent {
			return
		}
	}
	now := time.Now()
	mode := b.freezeMode(now)
	if mode == freezeLong {
		b.stats.stale.Add(1)
		b.log.Info("dropping question: freeze backlog", "channel", target, "from", src.Name)
		return
	}
	if mode == freezeShort && isChan && d.Action == AnswerNow {
		// Backlog of a short stall: another bot may have taken over
		// meanwhile, so wait for any of them before answering.
		if others := ls.otherBotsIn(target); len(others) > 0 {
			d = Decision{Action: HedgeWait, Hedge: others}
		}
	}
	stall := mode == freezeShort
	acc, _ := e.Tags.Get("account")
	if acc == "" {
		acc = ls.pres.account(src.Name)
	}
	m := msgCtx{
		Nick: src.Name, Hostmask: src.Name + "!" + src.Ident + "@" + src.Host, Account: acc,
		Channel: pc.Channel, Raw: text, BotNick: ls.nick,
	}
	q := &question{channel: pc.Channel, cmd: cmd, m: m}
	if !isChan {
		ls.answer(q)
		return
	}
	switch d.Action {
	case AnswerNow:
		ls.answer(q)
	case HedgeWait:
		b.stats.hedges.Add(1)
		q.hedge = d.Hedge
		q.deadline = now.Add(b.cfg.Hedge)
		q.stall = stall
		ls.pending = append(ls.pending, q)
	}
}

func (ls *loopState) decide(ch string) Decision {
	return Decide(DecideInput{
		View:      ls.view,
		SelfNick:  ls.nick,
		Present:   func(n string) bool { return ls.pres.present(ch, n) },
		Draining:  ls.draining && ls.drainActive,
		Successor: successorNick(ls.view, ls.nick),
	})
}

// noteSpoke is the guard: a hedged question is dropped when a bot we wait
// for, or any other known bot, speaks in its channel.
func (ls *loopState) noteSpoke(ch, nick string) {
	ls.pending = slices.DeleteFunc(ls.pending, func(q *question) bool {
		if !nickEqual(q.channel, ch) {
			return false
		}
		if ls.isBot(nick) || slices.ContainsFunc(q.hedge, func(h string) bool { return nickEqual(h, nick) }) {
			ls.b.stats.guard.Add(1)
			return true
		}
		return false
	})
}

// checkPending re-evaluates hedged questions after a presence or view
// change: answered at once when no higher-ranked bot is left in the channel
// (e.g. it quit), dropped when we are no longer the one to answer.
func (ls *loopState) checkPending() {
	var ready []*question
	ls.pending = slices.DeleteFunc(ls.pending, func(q *question) bool {
		d := ls.decide(q.channel)
		if q.stall && d.Action == AnswerNow && len(ls.otherBotsIn(q.channel)) > 0 {
			return false // short-stall backlog waits for its deadline
		}
		switch d.Action {
		case AnswerNow:
			ready = append(ready, q)
			return true
		case Silent:
			return true
		}
		q.hedge = d.Hedge
		return false
	})
	for _, q := range ready {
		ls.answer(q)
	}
}

// answer makes the final checks and queues the reply lines.
func (ls *loopState) answer(q *question) {
	b := ls.b
	if !ls.connected {
		return
	}
	if b.freezeMode(time.Now()) == freezeLong {
		b.stats.stale.Add(1)
		return
	}
	if q.channel != "" {
		if !ls.pres.inChannel(q.channel) || ls.decide(q.channel).Action == Silent {
			return
		}
	}
	for _, o := range ls.fx.run(q.cmd, q.m) {
		b.enqueueMsg(o.target, o.text, true)
	}
	b.stats.answers.Add(1)
}

func (ls *loopState) tick(now time.Time) {
	var due []*question
	ls.pending = slices.DeleteFunc(ls.pending, func(q *question) bool {
		if now.Before(q.deadline) {
			return false
		}
		due = append(due, q)
		return true
	})
	for _, q := range due {
		ls.answer(q)
	}
	if now.Sub(ls.lastHouse) < time.Second {
		return
	}
	ls.lastHouse = now
	if now.Sub(ls.lastChans) > channelsRefresh {
		ls.loadChannels()
	}
	ls.probeLag(now)
	if ls.connected && !nickEqual(ls.nick, ls.b.cfg.Nick) && now.Sub(ls.regainSent) > 30*time.Second {
		ls.regainSent = now
		ls.b.enqueueCtrl(ls.sess, girc.NICK, ls.b.cfg.Nick)
	}
}

func (ls *loopState) probeLag(now time.Time) {
	b := ls.b
	if !ls.connected {
		return
	}
	if ls.pingToken != "" {
		if b.mono(ls.pingSent) < b.lastFreeze.Load() {
			ls.pingToken = "" // sent before a freeze: not a lag sample
		} else if out := now.Sub(ls.pingSent); out > max(3*b.cfg.LagLimit, 30*time.Second) {
			b.log.Warn("no PONG, reconnecting", "waited", out)
			ls.pingToken = ""
			if gc, _ := b.current(); gc != nil {
				gc.Close()
			}
		}
		return
	}
	if now.Sub(ls.lastPing) < b.cfg.PingInterval {
		return
	}
	ls.pingSeq++
	ls.pingToken = "meshbot-" + strconv.Itoa(ls.pingSeq)
	ls.pingSent = now
	ls.lastPing = now
	b.enqueueCtrl(ls.sess, girc.PING, ls.pingToken)
}

// currentLag is the last sample, or the age of an outstanding probe if larger.
func (ls *loopState) currentLag() time.Duration {
	lag := ls.lag
	if ls.pingToken != "" && ls.b.mono(ls.pingSent) >= ls.b.lastFreeze.Load() {
		lag = max(lag, time.Since(ls.pingSent))
	}
	return lag
}

func (ls *loopState) publishState() {
	st := State{Connected: ls.connected, Nick: ls.nick, Server: ls.server}
	lag := ls.currentLag()
	st.LagMS = ls.lag.Milliseconds()
	switch {
	case !ls.connected:
		st.Reason = ReasonIRCDown
		st.Server, st.LagMS = "", 0
	case lag > ls.b.cfg.LagLimit:
		st.Reason = ReasonLagged
		st.LagMS = lag.Milliseconds()
	default:
		st.Healthy = true
	}
	// Lag alone changes often; publish it only with a state change or
	// when it moved by more than 100 ms.
	if ls.stateSent && st == ls.lastState {
		return
	}
	if ls.stateSent && st.Connected == ls.lastState.Connected && st.Healthy == ls.lastState.Healthy &&
		st.Nick == ls.lastState.Nick && st.Server == ls.lastState.Server && st.Reason == ls.lastState.Reason {
		if d := st.LagMS - ls.lastState.LagMS; d < 100 && d > -100 {
			return
		}
	}
	ls.lastState, ls.stateSent = st, true
	if f := ls.b.cfg.OnState; f != nil {
		f(st)
	}
}

// after runs after every input: channel reconciliation, handoff progress,
// state publication.
func (ls *loopState) after() {
	ls.reconcile(time.Now())
	ls.checkHandoff()
	ls.publishState()
}

func (ls *loopState) isActive() bool { return ls.view.Self != "" && ls.view.Active == ls.view.Self }

// hotStandby is the view's flag, or (with cfg.HotStandby) our own reading:
// self is the first usable candidate after the active node.
func (ls *loopState) hotStandby() bool {
	if ls.view.HotStandby {
		return true
	}
	if !ls.b.cfg.HotStandby || ls.view.Active == "" || ls.isActive() {
		return false
	}
	after := false
	for _, p := range ls.view.Order {
		if p.Name == ls.view.Active {
			after = true
			continue
		}
		if !after || !p.Alive || !p.Healthy || p.Leaving {
			continue
		}
		return p.Name == ls.view.Self
	}
	return false
}

func (ls *loopState) reconcile(now time.Time) {
	b := ls.b
	if !ls.connected {
		return
	}
	var joins []string
	needJoin := func(ch string) {
		f := ircLower(ch)
		if _, ok := ls.joined[f]; ok {
			return
		}
		if t, ok := ls.joinSent[f]; ok && now.Sub(t) < rejoinAfter {
			return
		}
		ls.joinSent[f] = now
		joins = append(joins, ch)
	}
	needJoin(b.cfg.BotChannel)
	needJoin(b.cfg.RelayChannel)
	want := ls.isActive() || ls.hotStandby()
	servedSet := map[string]bool{}
	an := activeNick(ls.view)
	for _, ch := range ls.served {
		f := ircLower(ch)
		servedSet[f] = true
		if ls.draining {
			continue // Handoff parts everything at the end
		}
		if want {
			delete(ls.leaveSince, f)
			needJoin(ch)
			continue
		}
		if _, ok := ls.joined[f]; !ok {
			delete(ls.leaveSince, f)
			continue
		}
		if an != "" && ls.pres.present(ch, an) {
			ls.part(ch, now)
			continue
		}
		since, ok := ls.leaveSince[f]
		if !ok {
			ls.leaveSince[f] = now
		} else if now.Sub(since) >= b.cfg.HandoffTimeout {
			ls.part(ch, now)
		}
	}
	// channels no longer in the list
	if !ls.draining {
		for f, ch := range ls.joined {
			if servedSet[f] || f == ircLower(b.cfg.BotChannel) || f == ircLower(b.cfg.RelayChannel) {
				continue
			}
			ls.part(ch, now)
		}
	}
	// JOIN #a,#b,... batched within the line budget
	var batch []string
	size := 0
	flush := func() {
		if len(batch) > 0 {
			b.enqueueCtrl(ls.sess, girc.JOIN, strings.Join(batch, ","))
		}
		batch, size = nil, 0
	}
	for _, ch := range joins {
		if size+len(ch)+1 > maxTextBytes {
			flush()
		}
		batch = append(batch, ch)
		size += len(ch) + 1
	}
	flush()
}

func (ls *loopState) part(ch string, now time.Time) {
	f := ircLower(ch)
	if t, ok := ls.partSent[f]; ok && now.Sub(t) < rejoinAfter {
		return
	}
	ls.partSent[f] = now
	ls.b.notePart(ch, now)
	delete(ls.leaveSince, f)
	ls.b.log.Info("parting channel", "channel", ch)
	ls.b.enqueueCtrl(ls.sess, girc.PART, ch)
}

// handoffReady: no hedged question is pending and in every served channel
// we are in, the successor is present.
func (ls *loopState) handoffReady() bool {
	if len(ls.pending) > 0 {
		return false
	}
	succ := successorNick(ls.view, ls.nick)
	for f, ch := range ls.joined {
		if f == ircLower(ls.b.cfg.BotChannel) || f == ircLower(ls.b.cfg.RelayChannel) {
			continue
		}
		if succ == "" || !ls.pres.present(ch, succ) {
			return false
		}
	}
	return true
}

func (ls *loopState) checkHandoff() {
	if !ls.draining || len(ls.waiters) == 0 {
		return
	}
	if ls.connected && !ls.handoffReady() {
		return
	}
	for _, w := range ls.waiters {
		close(w)
	}
	ls.waiters = nil
}
