package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// Issue 4: three nodes with IRC against ngircd, watched by an observer.

const (
	testChan = "#test"
	obsNick  = "watcher"
)

// ircEnv is a 3-node mesh with IRC, an ngircd, seeded factoids q000..qNNN
// and an observer in #test.
type ircEnv struct {
	t    *testing.T
	srv  *ircd
	c    *cluster
	obs  *ircClient
	pool *questionPool
}

func botNick(i int) string { return fmt.Sprintf("bot%d", i+1) }

func newIRCEnv(t *testing.T, questions int) *ircEnv {
	t.Helper()
	srv := startIRCd(t)
	c := newCluster(t, clusterOpts{n: 3, irc: func(i int) *ircConfig {
		return &ircConfig{
			Servers:        []string{srv.addr},
			Nick:           botNick(i),
			BotChannel:     "#bots",
			Channels:       []string{testChan},
			RelayChannel:   "#ops",
			Prefix:         "!",
			Hedge:          "1500ms",
			PingInterval:   "1s",
			HandoffTimeout: "10s",
		}
	}})
	e := &ircEnv{t: t, srv: srv, c: c, pool: &questionPool{max: questions}}
	t.Cleanup(func() {
		if t.Failed() && e.obs != nil {
			lines := e.obs.rawLines()
			t.Logf("---- observer saw %d lines, last 40:\n%s", len(lines), strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
		if t.Failed() {
			e.logHints(t, 30)
		}
	})
	c.waitFormed(60 * time.Second)
	n1 := c.nodes[0]
	err := parallelDo(questions, 4, func(i int) error {
		if r := n1.ctl("factoid", "set", qname(i), "ans-"+qname(i)); r.Code != 0 {
			return fmt.Errorf("seed %s: %s", qname(i), r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged(30 * time.Second)
	e.obs = dialIRC(t, srv.addr, obsNick)
	e.obs.join(testChan)
	e.waitNames([]string{"bot1"}, 60*time.Second)
	eventually(t, 30*time.Second, 200*time.Millisecond, "all bots connected to IRC", func() error {
		ms, err := n1.members()
		if err != nil {
			return err
		}
		for _, m := range ms {
			if !m.IRCConnected {
				return fmt.Errorf("%s not connected: %s", m.Name, fmtMembers(ms))
			}
		}
		return nil
	})
	return e
}

// waitNames waits until #test holds exactly the given bots (and the
// observer).
func (e *ircEnv) waitNames(bots []string, timeout time.Duration) {
	e.t.Helper()
	want := append(slices.Clone(bots), obsNick)
	slices.Sort(want)
	eventually(e.t, timeout, 250*time.Millisecond, fmt.Sprintf("%s holds %v", testChan, want), func() error {
		got, err := e.obs.namesOf(testChan)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("NAMES %s = %v", testChan, got)
		}
		return nil
	})
}

// drain waits until every question in must has an answer, or until no new
// answer arrived for quiet (then it returns, leaving the check to the
// caller), with an overall cap. It then waits settle for late doubles.
func (e *ircEnv) drain(must []question, quiet, settle time.Duration) answerSet {
	deadline := time.Now().Add(120 * time.Second)
	lastCount, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		msgs := e.obs.messages()
		a := collectAnswers(msgs, testChan)
		missing := 0
		for _, q := range must {
			if len(a[q.Name]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if len(msgs) != lastCount {
			lastCount, lastChange = len(msgs), time.Now()
		} else if time.Since(lastChange) > quiet {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(settle)
	return collectAnswers(e.obs.messages(), testChan)
}

// report checks and logs the answers to asked: it returns the doubles
// (questions with 2+ answers) and the unanswered questions.
func report(t *testing.T, asked []question, a answerSet) (doubles, lost []question) {
	t.Helper()
	for _, q := range asked {
		switch n := len(a[q.Name]); {
		case n == 0:
			lost = append(lost, q)
		case n > 1:
			doubles = append(doubles, q)
			var from []string
			for _, m := range a[q.Name] {
				from = append(from, fmt.Sprintf("%s@%s", m.From, m.At.Format("15:04:05.000")))
			}
			t.Errorf("DOUBLE ANSWER to !%s (asked %s): %v", q.Name, q.At.Format("15:04:05.000"), from)
		}
	}
	return doubles, lost
}

// logHints logs the nodes' log lines that explain dropped questions (freeze
// detection, backlog drops, role changes, parts), at most max per node.
func (e *ircEnv) logHints(t *testing.T, max int) {
	t.Helper()
	for _, n := range e.c.nodes {
		var hits []string
		for _, l := range strings.Split(n.logText(), "\n") {
			if strings.Contains(l, "freeze") || strings.Contains(l, "dropping question") ||
				strings.Contains(l, "role changed") || strings.Contains(l, "parting channel") || strings.Contains(l, "handoff") {
				hits = append(hits, l)
			}
		}
		if len(hits) > max {
			hits = append(hits[:max/2], append([]string{"..."}, hits[len(hits)-max/2:]...)...)
		}
		t.Logf("%s log hints:\n%s", n.name, strings.Join(hits, "\n"))
	}
}

// answerers counts answers per bot nick among answers received after since.
func answerers(a answerSet, since time.Time) map[string]int {
	m := map[string]int{}
	for _, ms := range a {
		for _, x := range ms {
			if !x.At.Before(since) {
				m[x.From]++
			}
		}
	}
	return m
}

// firstAnswerAfter returns the first answer received after since (by any
// bot if from is "", else by a bot other than from).
func firstAnswerAfter(a answerSet, since time.Time, notFrom string) (ircMsg, bool) {
	var best ircMsg
	found := false
	for _, ms := range a {
		for _, x := range ms {
			if x.At.Before(since) || (notFrom != "" && x.From == notFrom) {
				continue
			}
			if !found || x.At.Before(best.At) {
				best, found = x, true
			}
		}
	}
	return best, found
}

func names(qs []question) []string {
	var s []string
	for _, q := range qs {
		s = append(s, q.Name+"@"+q.At.Format("15:04:05.000"))
	}
	return s
}

func TestIRCNormalAnswers(t *testing.T) {
	e := newIRCEnv(t, 10)
	a := startAsker(e.obs, testChan, 700*time.Millisecond, e.pool.take)
	time.Sleep(10 * 700 * time.Millisecond)
	asked := a.Stop()
	ans := e.drain(asked, 10*time.Second, 3*time.Second)
	doubles, lost := report(t, asked, ans)
	if len(lost) > 0 {
		t.Errorf("%d of %d questions unanswered: %v", len(lost), len(asked), names(lost))
	}
	var lat []time.Duration
	for _, q := range asked {
		for _, m := range ans[q.Name] {
			if m.From != "bot1" {
				t.Errorf("!%s answered by %s, want bot1 only", q.Name, m.From)
			}
			if want := q.Name + " is ans-" + q.Name; m.Text != want {
				t.Errorf("!%s answered %q, want %q", q.Name, m.Text, want)
			}
			lat = append(lat, m.At.Sub(q.At))
		}
	}
	figure(t, "irc_answer_latency_median_ms", ms(median(lat)))
	t.Logf("asked %d, doubles %d, lost %d, latencies %v", len(asked), len(doubles), len(lost), lat)
	got, err := e.obs.namesOf(testChan)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"bot1", obsNick}) {
		t.Errorf("NAMES %s = %v, want only bot1 and the observer", testChan, got)
	}
}

func TestIRCKillActive(t *testing.T) {
	e := newIRCEnv(t, 60)
	a := startAsker(e.obs, testChan, 500*time.Millisecond, e.pool.take)
	time.Sleep(3 * time.Second)
	killAt := time.Now()
	e.c.nodes[0].kill()
	time.Sleep(15 * time.Second)
	asked := a.Stop()

	var must, before, after []question
	for _, q := range asked {
		if q.At.Sub(killAt) > 10*time.Second {
			must = append(must, q)
		}
		if q.At.Before(killAt) {
			before = append(before, q)
		} else {
			after = append(after, q)
		}
	}
	ans := e.drain(asked, 10*time.Second, 4*time.Second)
	doubles, lost := report(t, asked, ans)
	for _, q := range must {
		if len(ans[q.Name]) == 0 {
			t.Errorf("!%s asked %s after the kill was never answered", q.Name, q.At.Sub(killAt).Round(time.Millisecond))
		}
	}
	if first, ok := firstAnswerAfter(ans, killAt, ""); ok {
		figure(t, "irc_kill_to_first_answer_ms", ms(first.At.Sub(killAt)))
		t.Logf("first answer after the kill: %s from %s", first.Text, first.From)
	} else {
		t.Errorf("no answer at all after the kill")
	}
	if first, ok := firstAnswerAfter(ans, killAt, "bot1"); ok {
		figure(t, "irc_kill_to_first_bot2_answer_ms", ms(first.At.Sub(killAt)))
	}
	// The first question asked after the kill: how long until its answer.
	if len(after) > 0 {
		if ms0 := ans[after[0].Name]; len(ms0) > 0 {
			figure(t, "irc_kill_first_question_after_kill_answer_ms", ms(ms0[0].At.Sub(after[0].At)))
		}
	}
	for _, ev := range e.obs.eventsList() {
		if ev.Command == "JOIN" && ev.Nick == "bot2" && ev.Channel == testChan && ev.At.After(killAt) {
			figure(t, "irc_kill_to_bot2_join_ms", ms(ev.At.Sub(killAt)))
			break
		}
	}
	lostAfter := 0
	for _, q := range lost {
		if !q.At.Before(killAt) {
			lostAfter++
		}
	}
	figure(t, "irc_kill_lost_questions", fmt.Sprintf("%d/%d(after kill %d/%d)", len(lost), len(asked), lostAfter, len(after)))
	figure(t, "irc_kill_double_answers", len(doubles))
	t.Logf("answers after the kill by: %v; lost: %v", answerers(ans, killAt), names(lost))
}

func TestIRCStopActive(t *testing.T) {
	e := newIRCEnv(t, 90)
	n1 := e.c.nodes[0]
	a := startAsker(e.obs, testChan, 500*time.Millisecond, e.pool.take)
	time.Sleep(3 * time.Second)
	stopAt := time.Now()
	n1.signal(syscall.SIGSTOP)
	time.Sleep(20 * time.Second) // the scenario: a frozen node
	contAt := time.Now()
	n1.signal(syscall.SIGCONT)
	time.Sleep(10 * time.Second)
	asked := a.Stop()
	ans := e.drain(asked, 10*time.Second, 6*time.Second)
	doubles, lost := report(t, asked, ans)
	if first, ok := firstAnswerAfter(ans, stopAt, "bot1"); ok {
		figure(t, "irc_sigstop_to_next_bot_answer_ms", ms(first.At.Sub(stopAt)))
		t.Logf("first answer by another bot: %q from %s", first.Text, first.From)
	} else {
		t.Errorf("no other bot answered while bot1 was frozen")
	}
	for _, q := range asked {
		if q.At.Sub(stopAt) > 10*time.Second && len(ans[q.Name]) == 0 {
			t.Errorf("!%s asked %s after SIGSTOP (%s after SIGCONT) was never answered",
				q.Name, q.At.Sub(stopAt).Round(time.Millisecond), q.At.Sub(contAt).Round(time.Millisecond))
		}
	}
	figure(t, "irc_sigstop_lost_questions", fmt.Sprintf("%d/%d", len(lost), len(asked)))
	figure(t, "irc_sigstop_double_answers", len(doubles))
	t.Logf("answers during the freeze by %v, after SIGCONT by %v; lost %v",
		answerers(ans, stopAt), answerers(ans, contAt), names(lost))
	if !n1.running() {
		t.Errorf("bot1's process is gone after SIGCONT")
	}
}

func TestIRCTermActive(t *testing.T) {
	e := newIRCEnv(t, 80)
	n1 := e.c.nodes[0]
	a := startAsker(e.obs, testChan, 300*time.Millisecond, e.pool.take)
	time.Sleep(3 * time.Second)
	termAt := time.Now()
	n1.signal(syscall.SIGTERM)
	time.Sleep(12 * time.Second)
	asked := a.Stop()
	ans := e.drain(asked, 10*time.Second, 4*time.Second)
	doubles, lost := report(t, asked, ans)
	if len(lost) > 0 {
		var pre, post []question
		for _, q := range lost {
			if q.At.Before(termAt) {
				pre = append(pre, q)
			} else {
				post = append(post, q)
			}
		}
		t.Errorf("%d of %d questions lost across a graceful SIGTERM: %d asked before SIGTERM %v, %d after %v",
			len(lost), len(asked), len(pre), names(pre), len(post), names(post))
	}
	code, exited := n1.wait(30 * time.Second)
	if !exited || code != 0 {
		t.Errorf("bot1 after SIGTERM: exited %v code %d, want exit 0", exited, code)
	}
	if first, ok := firstAnswerAfter(ans, termAt, "bot1"); ok {
		figure(t, "irc_sigterm_to_next_bot_answer_ms", ms(first.At.Sub(termAt)))
	}
	figure(t, "irc_sigterm_lost_questions", fmt.Sprintf("%d/%d", len(lost), len(asked)))
	figure(t, "irc_sigterm_double_answers", len(doubles))
	t.Logf("answers after SIGTERM by %v", answerers(ans, termAt))
}

func TestIRCPrimaryReturns(t *testing.T) {
	e := newIRCEnv(t, 90)
	n1, n2 := e.c.nodes[0], e.c.nodes[1]
	e.c.age()
	n1.kill()
	e.waitNames([]string{"bot2"}, 30*time.Second)

	a := startAsker(e.obs, testChan, 500*time.Millisecond, e.pool.take)
	time.Sleep(2 * time.Second)
	restartAt := time.Now()
	n1.start()
	var aliveAt time.Time
	eventually(t, 30*time.Second, 50*time.Millisecond, "n1 alive again in n2's view", func() error {
		ms, err := n2.members()
		if err != nil {
			return err
		}
		if m := byName(ms)["n1"]; m.Status != "alive" {
			return fmt.Errorf("n2 sees n1 as %q", m.Status)
		}
		aliveAt = time.Now()
		return nil
	})
	var joinAt, partAt time.Time
	eventually(t, preemptDelay+60*time.Second, 100*time.Millisecond, "bot1 rejoins #test and bot2 parts", func() error {
		for _, ev := range e.obs.eventsList() {
			if ev.At.Before(restartAt) {
				continue
			}
			if ev.Command == "JOIN" && ev.Nick == "bot1" && ev.Channel == testChan && joinAt.IsZero() {
				joinAt = ev.At
			}
			if (ev.Command == "PART" || ev.Command == "QUIT") && ev.Nick == "bot2" && (ev.Channel == testChan || ev.Channel == "") && partAt.IsZero() {
				partAt = ev.At
			}
		}
		if joinAt.IsZero() || partAt.IsZero() {
			return fmt.Errorf("bot1 JOIN at %v, bot2 PART at %v", joinAt, partAt)
		}
		return nil
	})
	time.Sleep(5 * time.Second)
	asked := a.Stop()
	ans := e.drain(asked, 10*time.Second, 4*time.Second)
	doubles, lost := report(t, asked, ans)

	figure(t, "irc_handback_join_after_alive_ms", ms(joinAt.Sub(aliveAt)))
	figure(t, "irc_handback_part_after_join_ms", ms(partAt.Sub(joinAt)))
	if joinAt.Sub(aliveAt) < preemptDelay-time.Second {
		t.Errorf("bot1 rejoined %s %s after n1 was alive again, before preempt_delay %s", testChan, joinAt.Sub(aliveAt), preemptDelay)
	}
	if partAt.Before(joinAt) {
		t.Errorf("bot2 parted %s at %s, before bot1 joined at %s", testChan, partAt.Format("15:04:05.000"), joinAt.Format("15:04:05.000"))
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d questions unanswered across the handback: %v", len(lost), len(asked), names(lost))
	}
	figure(t, "irc_handback_double_answers", len(doubles))
	t.Logf("answers before bot1 joined by %v, after bot2 parted by %v", answerers(ans, restartAt), answerers(ans, partAt))
	// Answers to questions asked before the handback may arrive late (bot2
	// hedges 1.5s once bot1 is back); questions asked after bot2 parted are
	// bot1's alone.
	for _, q := range asked {
		if q.At.After(partAt) {
			for _, m := range ans[q.Name] {
				if m.From != "bot1" {
					t.Errorf("!%s asked after bot2 parted was answered by %s", q.Name, m.From)
				}
			}
		}
	}
	e.waitNames([]string{"bot1"}, 10*time.Second)
}

func TestIRCInjectionAndLongValues(t *testing.T) {
	e := newIRCEnv(t, 5)
	n1 := e.c.nodes[0]
	r := n1.ctl("factoid", "set", "x", "a\r\nPRIVMSG #test :pwned")
	if r.Code != 1 {
		t.Errorf("set a value with CR LF: %s; want exit 1", r)
	}
	for _, v := range []string{"a\nPRIVMSG #test :pwned", "a\rPRIVMSG #test :pwned"} {
		if r := n1.ctl("factoid", "set", "x", v); r.Code != 1 {
			t.Errorf("set %q: %s; want exit 1", v, r)
		}
	}
	if v, ok, err := n1.get("x"); err != nil || ok {
		t.Errorf("refused factoid x is readable: %q (err %v)", v, err)
	}

	// The longest value the store accepts, full of multi-byte runes.
	unit := "ünïcødé ✓ 日本語 🦀 "
	var long string
	for _, size := range []int{16384, 8192, 4096, 2048, 1024, 512, 400, 300} {
		v := strings.Repeat(unit, size/len(unit)+1)
		for len(v) > size || !utf8.ValidString(v) {
			_, sz := utf8.DecodeLastRuneInString(v)
			v = v[:len(v)-sz]
		}
		v = strings.TrimSpace(v)
		if r := n1.ctl("factoid", "set", "long", v); r.Code == 0 {
			long = v
			t.Logf("longest accepted value tried: %d bytes (%d runes)", len(v), utf8.RuneCountInString(v))
			figure(t, "irc_longest_value_accepted_bytes", len(v))
			break
		} else {
			t.Logf("value of %d bytes refused: %s", len(v), strings.TrimSpace(r.Stderr))
		}
	}
	if long == "" {
		t.Fatal("no long value accepted")
	}
	e.c.waitConverged(30 * time.Second)

	start := time.Now()
	asked := e.obs.privmsg(testChan, "!long")
	var got []ircMsg
	eventually(t, 20*time.Second, 100*time.Millisecond, "answer to !long", func() error {
		got = nil
		for _, m := range e.obs.messages() {
			if m.At.After(start) && strings.HasPrefix(m.From, "bot") {
				got = append(got, m)
			}
		}
		if len(got) == 0 {
			return fmt.Errorf("no answer")
		}
		return nil
	})
	time.Sleep(4 * time.Second) // a cut-off tail or a second line would arrive now
	got = nil
	for _, m := range e.obs.messages() {
		if m.At.After(start) && strings.HasPrefix(m.From, "bot") {
			got = append(got, m)
		}
	}
	figure(t, "irc_long_answer_latency_ms", ms(got[0].At.Sub(asked)))
	if len(got) != 1 {
		t.Errorf("!long produced %d messages, want exactly 1: %q", len(got), got)
	}
	for _, m := range got {
		if m.From != "bot1" || !strings.EqualFold(m.Target, testChan) {
			t.Errorf("answer from %s to %s, want bot1 in %s", m.From, m.Target, testChan)
		}
		if !utf8.ValidString(m.Text) {
			t.Errorf("answer is not valid UTF-8 (cut inside a rune?): %q", m.Text)
		}
		prefix := "long is " + string([]rune(long)[:10])
		if !strings.HasPrefix(m.Text, prefix) {
			t.Errorf("answer %q does not start with %q", m.Text, prefix)
		}
		t.Logf("answer: %d bytes", len(m.Text))
	}
	for _, l := range e.obs.rawLines() {
		if strings.Contains(l, "pwned") {
			t.Errorf("observer saw %q", l)
		}
		if len(l)+2 > 512 {
			t.Errorf("observer saw a %d-byte line (IRC limit 512 with CRLF): %.80q...", len(l)+2, l)
		}
	}
	e.checkStillServing(t)
}

// checkStillServing checks that every bot is connected and bot1 answers a
// normal question exactly once.
func (e *ircEnv) checkStillServing(t *testing.T) {
	t.Helper()
	eventually(t, 15*time.Second, 200*time.Millisecond, "all bots still connected", func() error {
		ms, err := e.c.nodes[1].members()
		if err != nil {
			return err
		}
		for _, m := range ms {
			if !m.IRCConnected || m.Status != "alive" {
				return fmt.Errorf("%s: %s", m.Name, fmtMembers(ms))
			}
		}
		return nil
	})
	if !e.obs.connected() {
		t.Fatal("the observer was disconnected")
	}
	q := e.pool.take()
	if q == "" {
		t.Fatal("question pool empty")
	}
	asked := []question{{Name: q, At: e.obs.privmsg(testChan, "!"+q)}}
	ans := e.drain(asked, 15*time.Second, 3*time.Second)
	_, lost := report(t, asked, ans)
	if len(lost) > 0 {
		t.Errorf("normal question !%s not answered after the bad input", q)
	}
	for _, m := range ans[q] {
		if m.From != "bot1" {
			t.Errorf("!%s answered by %s, want bot1", q, m.From)
		}
	}
}

func TestIRCBadInput(t *testing.T) {
	e := newIRCEnv(t, 5)
	n1 := e.c.nodes[0]
	n1.set("x", "the x value")
	e.c.waitConverged(30 * time.Second)
	mal := dialIRC(t, e.srv.addr, "mallory")
	mal.join(testChan)
	bad := [][]byte{
		[]byte("PRIVMSG #test :!\xff\xfe\xfd\r\n"),
		[]byte("PRIVMSG #test :!q004\xff\r\n"),
		[]byte("PRIVMSG #test :!x =~ s/(/b/\r\n"),
		[]byte("PRIVMSG #test :x =~ s/(/b/\r\n"),
		[]byte("PRIVMSG #test :!x =~ s/[/b/g\r\n"),
		[]byte("PRIVMSG #test :\x01VERSION\x01\r\n"),
		[]byte("PRIVMSG #test :!\r\n"),
		[]byte("PRIVMSG #test :!!!!!!!!!!\r\n"),
		[]byte("PRIVMSG #test :!" + strings.Repeat("z", 400) + "\r\n"),
		[]byte("PRIVMSG #test :!tell\r\n"),
		[]byte("PRIVMSG #test :!tell bot1 about\r\n"),
		[]byte("PRIVMSG #test :bot1:\r\n"),
		[]byte("PRIVMSG #test :!q004 > \r\n"),
		[]byte("PRIVMSG #test :!q004 | \xff\r\n"),
		[]byte("PRIVMSG #test :$who $nick $chan \x00\r\n"),
		[]byte("PRIVMSG bot1 :\xff\xfe\r\n"),
		[]byte("PRIVMSG bot1 :!x =~ s/(/b/\r\n"),
		[]byte("NOTICE #test :!q004\r\n"),
		[]byte(":\r\n"),
		[]byte("PRIVMSG\r\n"),
		[]byte("PRIVMSG #test\r\n"),
		[]byte("\r\n\r\n"),
		[]byte("PRIVMSG #test :!" + strings.Repeat("\xe6\x97", 100) + "\r\n"),
		// Long lines the server still relays (with the sender's prefix added
		// they exceed 512 bytes on the way to the bots).
		[]byte("PRIVMSG #test :" + strings.Repeat("L", 490) + "\r\n"),
		[]byte("PRIVMSG #test :!" + strings.Repeat("l", 489) + "\r\n"),
		// Over-long: 500 bytes of text; ngircd answers "Request too long"
		// and drops mallory, so these go last.
		[]byte("PRIVMSG #test :" + strings.Repeat("A", 500) + "\r\n"),
		[]byte("PRIVMSG #test :!" + strings.Repeat("B", 500) + "\r\n"),
	}
	for _, b := range bad {
		mal.sendRaw(b)
		time.Sleep(150 * time.Millisecond)
	}
	time.Sleep(4 * time.Second) // let the bots process (hedge is 1.5s)
	if v, ok, err := n1.get("x"); err != nil || !ok || v != "the x value" {
		t.Errorf("after a broken-regex edit x = %q (found %v, err %v), want it unchanged", v, ok, err)
	}
	for _, m := range e.obs.messages() {
		if strings.HasPrefix(m.From, "bot") {
			t.Logf("bot reply to bad input: %s -> %s: %q", m.From, m.Target, m.Text)
			if !utf8.ValidString(m.Text) {
				t.Errorf("%s sent invalid UTF-8: %q", m.From, m.Text)
			}
		}
	}
	e.checkStillServing(t)
}
