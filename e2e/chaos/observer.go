package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrBadLine is returned by ParseLine for a line that is not an IRC message.
var ErrBadLine = errors.New("bad irc line")

// Message is one parsed IRC line.
type Message struct {
	Prefix  string   // "nick!user@host" or a server name; "" if none
	Command string   // upper-cased command or numeric
	Params  []string // middle parameters, then the trailing one
}

// Nick returns the nick part of the prefix.
func (m Message) Nick() string {
	n, _, _ := strings.Cut(m.Prefix, "!")
	return n
}

// Param returns parameter i or "".
func (m Message) Param(i int) string {
	if i < len(m.Params) {
		return m.Params[i]
	}
	return ""
}

// ParseLine parses one IRC line (without CR LF; a trailing CR or LF is
// ignored). It rejects empty lines, a prefix without a command and lines
// holding NUL, CR or LF inside.
func ParseLine(line string) (Message, error) {
	line = strings.TrimRight(line, "\r\n")
	if strings.ContainsAny(line, "\x00\r\n") {
		return Message{}, fmt.Errorf("%w: control character in %q", ErrBadLine, line)
	}
	var m Message
	rest := line
	if strings.HasPrefix(rest, ":") {
		p, r, ok := strings.Cut(rest[1:], " ")
		if !ok || p == "" {
			return Message{}, fmt.Errorf("%w: prefix without command in %q", ErrBadLine, line)
		}
		m.Prefix, rest = p, r
	}
	rest = strings.TrimLeft(rest, " ")
	for rest != "" {
		if strings.HasPrefix(rest, ":") && m.Command != "" {
			m.Params = append(m.Params, rest[1:])
			break
		}
		tok, r, _ := strings.Cut(rest, " ")
		if m.Command == "" {
			m.Command = strings.ToUpper(tok)
		} else {
			m.Params = append(m.Params, tok)
		}
		rest = strings.TrimLeft(r, " ")
	}
	if m.Command == "" {
		return Message{}, fmt.Errorf("%w: no command in %q", ErrBadLine, line)
	}
	return m, nil
}

// QuestionTag returns the tag that marks the answers to question id: the
// observer asks "!NAME | qID", and the bot prefixes its answer with "qID: ".
func QuestionTag(id int) string { return "q" + strconv.Itoa(id) }

// ParseAnswerTag returns the question id of an answer "qID: ...".
func ParseAnswerTag(text string) (int, bool) {
	tag, _, ok := strings.Cut(text, ": ")
	if !ok || len(tag) < 2 || tag[0] != 'q' {
		return 0, false
	}
	id, err := strconv.Atoi(tag[1:])
	if err != nil || id < 0 || strconv.Itoa(id) != tag[1:] {
		return 0, false
	}
	return id, true
}

// Answer is one channel message that answers a question.
type Answer struct {
	Nick string
	At   time.Time
	Text string
}

// Question is one question the observer asked and the answers it got.
type Question struct {
	ID      int
	At      time.Time // when it was written to the server
	Sent    bool      // false: the observer was not connected, nothing was asked
	Answers []Answer
}

// Event is a channel or connection event seen by the observer, kept for
// the transcript.
type Event struct {
	At   time.Time
	Text string
}

// ObserverConfig configures an Observer.
type ObserverConfig struct {
	// Addr is the IRC server "host:port". Required.
	Addr string
	// Nick is the observer's nick; "_" is appended while it is taken.
	// Required.
	Nick string
	// Channel is joined and watched. Required.
	Channel string
	// Factoid is the factoid the observer asks for. Required.
	Factoid string
	// Interval is the period of questions while asking. 0 = 500ms.
	Interval time.Duration
	// Retry is the pause between reconnect attempts. 0 = 300ms.
	Retry time.Duration
	// AskOnJoin asks a question the moment another nick joins the
	// channel: a bot joins when it believes it became active, which is
	// when two bots may both think they are (takeover, handback, a
	// healed partition, the IRC server coming back). false = off.
	AskOnJoin bool
	// Logger receives debug lines; nil = discard.
	Logger *slog.Logger
}

// Observer is a small IRC client that sits in one channel, asks a factoid
// question with a unique tag on a schedule and files every tagged answer
// under its question, so a test can count answers per question (at most
// one bot may answer each). It reconnects by itself when the server goes
// away. All methods are safe for concurrent use; none blocks on the
// network except WaitJoined, which waits for its context.
type Observer struct {
	cfg ObserverConfig
	log *slog.Logger

	mu        sync.Mutex
	conn      net.Conn
	joined    bool
	nick      string
	questions []*Question
	stray     []Answer // channel messages that answer no known question
	events    []Event
	asking    context.CancelFunc
	askDone   chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewObserver starts an observer; it connects in the background.
func NewObserver(cfg ObserverConfig) (*Observer, error) {
	if cfg.Addr == "" || cfg.Nick == "" || cfg.Channel == "" || cfg.Factoid == "" {
		return nil, errors.New("observer: addr, nick, channel and factoid are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 300 * time.Millisecond
	}
	o := &Observer{cfg: cfg, log: cfg.Logger, nick: cfg.Nick}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.log = o.log.With("component", "observer")
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.wg.Add(1)
	go o.loop()
	return o, nil
}

// Close stops asking, disconnects and waits for the observer's goroutines.
func (o *Observer) Close() {
	o.StopAsking()
	o.cancel()
	o.mu.Lock()
	if o.conn != nil {
		o.conn.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

func (o *Observer) event(format string, a ...any) {
	o.mu.Lock()
	o.events = append(o.events, Event{At: time.Now(), Text: fmt.Sprintf(format, a...)})
	o.mu.Unlock()
}

// loop keeps a session up until Close.
func (o *Observer) loop() {
	defer o.wg.Done()
	for o.ctx.Err() == nil {
		err := o.session()
		if o.ctx.Err() != nil {
			return
		}
		o.event("disconnected: %v", err)
		select {
		case <-o.ctx.Done():
			return
		case <-time.After(o.cfg.Retry):
		}
	}
}

// session connects, registers, joins and reads until the connection ends.
func (o *Observer) session() error {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(o.ctx, "tcp", o.cfg.Addr)
	if err != nil {
		return err
	}
	o.mu.Lock()
	if o.ctx.Err() != nil {
		o.mu.Unlock()
		c.Close()
		return o.ctx.Err()
	}
	o.conn, o.joined, o.nick = c, false, o.cfg.Nick
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.conn, o.joined = nil, false
		o.mu.Unlock()
		c.Close()
	}()
	o.event("connected to %s", o.cfg.Addr)
	if err := o.write(c, "NICK "+o.cfg.Nick, "USER chaos 0 * :chaos observer"); err != nil {
		return err
	}
	r := bufio.NewReaderSize(c, 4096)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		m, err := ParseLine(line)
		if err != nil {
			continue
		}
		if err := o.handle(c, m); err != nil {
			return err
		}
	}
}

func (o *Observer) write(c net.Conn, lines ...string) error {
	_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	_, err := c.Write([]byte(b.String()))
	return err
}

func (o *Observer) handle(c net.Conn, m Message) error {
	now := time.Now()
	switch m.Command {
	case "PING":
		return o.write(c, "PONG :"+m.Param(0))
	case "001":
		return o.write(c, "JOIN "+o.cfg.Channel)
	case "433": // nick in use
		o.mu.Lock()
		o.nick += "_"
		n := o.nick
		o.mu.Unlock()
		return o.write(c, "NICK "+n)
	case "366": // end of NAMES: joined
		if strings.EqualFold(m.Param(1), o.cfg.Channel) {
			o.mu.Lock()
			o.joined = true
			o.mu.Unlock()
			o.event("joined %s", o.cfg.Channel)
		}
	case "353":
		o.event("names %s: %s", m.Param(2), m.Param(3))
	case "JOIN", "PART", "QUIT", "KICK", "NICK":
		o.event("%s %s %s", m.Nick(), m.Command, strings.Join(m.Params, " "))
		o.mu.Lock()
		self := strings.EqualFold(m.Nick(), o.nick)
		o.mu.Unlock()
		if m.Command == "JOIN" && o.cfg.AskOnJoin && !self && strings.EqualFold(m.Param(0), o.cfg.Channel) {
			id := o.Ask()
			o.event("asked q%d on %s's join", id, m.Nick())
		}
	case "PRIVMSG":
		if !strings.EqualFold(m.Param(0), o.cfg.Channel) {
			return nil
		}
		a := Answer{Nick: m.Nick(), At: now, Text: m.Param(1)}
		id, ok := ParseAnswerTag(a.Text)
		o.mu.Lock()
		if ok && id < len(o.questions) {
			q := o.questions[id]
			q.Answers = append(q.Answers, a)
		} else {
			o.stray = append(o.stray, a)
		}
		o.mu.Unlock()
	}
	return nil
}

// Joined reports whether the observer sits in its channel now.
func (o *Observer) Joined() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.joined
}

// WaitJoined waits until the observer sits in its channel or ctx ends.
func (o *Observer) WaitJoined(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !o.Joined() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("observer not in %s: %w", o.cfg.Channel, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Ask asks one question now and returns its id. A question asked while
// disconnected is recorded with Sent false.
func (o *Observer) Ask() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := len(o.questions)
	q := &Question{ID: id, At: time.Now()}
	o.questions = append(o.questions, q)
	if o.conn != nil && o.joined {
		line := fmt.Sprintf("PRIVMSG %s :%s%s | %s", o.cfg.Channel, "!", o.cfg.Factoid, QuestionTag(id))
		// Writing under the lock keeps ids in send order; the deadline
		// bounds the wait.
		q.Sent = o.write(o.conn, line) == nil
		q.At = time.Now()
	}
	return id
}

// Say sends a raw PRIVMSG to the channel (for bad-input faults); false if
// not connected.
func (o *Observer) Say(text string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conn == nil || !o.joined {
		return false
	}
	return o.write(o.conn, "PRIVMSG "+o.cfg.Channel+" :"+text) == nil
}

// StartAsking asks a question every Interval until StopAsking.
func (o *Observer) StartAsking() {
	o.StopAsking()
	ctx, cancel := context.WithCancel(o.ctx)
	done := make(chan struct{})
	o.mu.Lock()
	o.asking, o.askDone = cancel, done
	o.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(o.cfg.Interval)
		defer t.Stop()
		for {
			o.Ask()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// StopAsking stops the asking started by StartAsking (no-op if none).
func (o *Observer) StopAsking() {
	o.mu.Lock()
	cancel, done := o.asking, o.askDone
	o.asking, o.askDone = nil, nil
	o.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// NextID returns the id the next question will get.
func (o *Observer) NextID() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.questions)
}

// Questions returns copies of questions from..to-1.
func (o *Observer) Questions(from, to int) []Question {
	o.mu.Lock()
	defer o.mu.Unlock()
	to = min(to, len(o.questions))
	var out []Question
	for i := max(from, 0); i < to; i++ {
		q := *o.questions[i]
		q.Answers = append([]Answer(nil), q.Answers...)
		out = append(out, q)
	}
	return out
}

// Stray returns the channel messages that answered no known question.
func (o *Observer) Stray() []Answer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Answer(nil), o.stray...)
}

// Events returns the observer's transcript of channel and connection
// events.
func (o *Observer) Events() []Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Event(nil), o.events...)
}

// Tally summarises a range of questions.
type Tally struct {
	Asked      int // questions sent
	Answered   int // sent questions with at least one answer
	Double     int // questions with two or more answers
	Unanswered int // sent questions with no answer
	// DoubleIDs lists the questions with more than one answer.
	DoubleIDs []int
	// Answerers counts first answers per nick.
	Answerers map[string]int
}

// TallyQuestions counts answers per question.
func TallyQuestions(qs []Question) Tally {
	t := Tally{Answerers: map[string]int{}}
	for _, q := range qs {
		if !q.Sent {
			continue
		}
		t.Asked++
		switch n := len(q.Answers); {
		case n == 0:
			t.Unanswered++
		default:
			t.Answered++
			t.Answerers[q.Answers[0].Nick]++
			if n > 1 {
				t.Double++
				t.DoubleIDs = append(t.DoubleIDs, q.ID)
			}
		}
	}
	return t
}
