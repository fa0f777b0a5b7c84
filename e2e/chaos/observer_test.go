package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var parseLineCases = []struct {
	line string
	want Message
	err  bool
}{
	{line: "PING :irc.test", want: Message{Command: "PING", Params: []string{"irc.test"}}},
	{line: ":bot1!b@h PRIVMSG #chaos :q12: chaos is up\r\n", want: Message{Prefix: "bot1!b@h", Command: "PRIVMSG", Params: []string{"#chaos", "q12: chaos is up"}}},
	{line: ":irc.test 366 obs #chaos :End of NAMES list", want: Message{Prefix: "irc.test", Command: "366", Params: []string{"obs", "#chaos", "End of NAMES list"}}},
	{line: ":irc.test 353 obs = #chaos :@bot1 obs", want: Message{Prefix: "irc.test", Command: "353", Params: []string{"obs", "=", "#chaos", "@bot1 obs"}}},
	{line: "join  #a   #b", want: Message{Command: "JOIN", Params: []string{"#a", "#b"}}},
	{line: ":n!u@h QUIT :", want: Message{Prefix: "n!u@h", Command: "QUIT", Params: []string{""}}},
	{line: ":n!u@h PRIVMSG #c ::-) smile", want: Message{Prefix: "n!u@h", Command: "PRIVMSG", Params: []string{"#c", ":-) smile"}}},
	{line: "", err: true},
	{line: "   ", err: true},
	{line: ":prefixonly", err: true},
	{line: ": PRIVMSG #c :x", err: true},
	{line: "PRIVMSG #c :a\x00b", err: true},
	{line: "PRIVMSG #c :a\rPRIVMSG #c :b", err: true},
}

func TestParseLine(t *testing.T) {
	for _, tt := range parseLineCases {
		t.Run(fmt.Sprintf("%q", tt.line), func(t *testing.T) {
			got, err := ParseLine(tt.line)
			if tt.err {
				if !errors.Is(err, ErrBadLine) {
					t.Fatalf("ParseLine = %+v, %v; want ErrBadLine", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseLine = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func FuzzParseLine(f *testing.F) {
	for _, tt := range parseLineCases {
		f.Add(tt.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := ParseLine(line)
		if err != nil {
			return
		}
		if m.Command == "" || strings.ContainsAny(m.Command, " \r\n\x00") {
			t.Fatalf("bad command %q from %q", m.Command, line)
		}
		for i, p := range m.Params {
			if strings.ContainsAny(p, "\r\n\x00") || (i < len(m.Params)-1 && strings.Contains(p, " ")) {
				t.Fatalf("bad param %d %q from %q", i, p, line)
			}
		}
	})
}

var answerTagCases = []struct {
	text string
	id   int
	ok   bool
}{
	{"q0: chaos is up", 0, true},
	{"q123: x", 123, true},
	{"q7: ", 7, true},
	{"q: x", 0, false},
	{"q12 x", 0, false},
	{"Q12: x", 0, false},
	{"q012: x", 0, false},
	{"q-1: x", 0, false},
	{"q1a: x", 0, false},
	{"chaos is up", 0, false},
	{"", 0, false},
}

func TestParseAnswerTag(t *testing.T) {
	for _, tt := range answerTagCases {
		id, ok := ParseAnswerTag(tt.text)
		if id != tt.id || ok != tt.ok {
			t.Errorf("ParseAnswerTag(%q) = %d, %v; want %d, %v", tt.text, id, ok, tt.id, tt.ok)
		}
	}
	if id, ok := ParseAnswerTag(QuestionTag(42) + ": v"); !ok || id != 42 {
		t.Errorf("round trip of QuestionTag(42) = %d, %v", id, ok)
	}
}

func FuzzParseAnswerTag(f *testing.F) {
	for _, tt := range answerTagCases {
		f.Add(tt.text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		id, ok := ParseAnswerTag(text)
		if ok && !strings.HasPrefix(text, QuestionTag(id)+": ") {
			t.Fatalf("ParseAnswerTag(%q) = %d but the text does not start with its tag", text, id)
		}
	})
}

func TestTallyQuestions(t *testing.T) {
	a := func(nick string) Answer { return Answer{Nick: nick} }
	qs := []Question{
		{ID: 0, Sent: true, Answers: []Answer{a("bot1")}},
		{ID: 1, Sent: true, Answers: []Answer{a("bot2"), a("bot1")}},
		{ID: 2, Sent: true},
		{ID: 3, Sent: false},
		{ID: 4, Sent: true, Answers: []Answer{a("bot2")}},
	}
	got := TallyQuestions(qs)
	want := Tally{Asked: 4, Answered: 3, Double: 1, Unanswered: 1, DoubleIDs: []int{1},
		Answerers: map[string]int{"bot1": 1, "bot2": 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TallyQuestions = %+v, want %+v", got, want)
	}
}

// fakeIRC is a tiny IRC server: it welcomes, confirms JOINs, answers
// "!f | qN" as bot1 (and also as bot2 when N is in double), and drops the
// first connection after dropAfter questions.
type fakeIRC struct {
	l         net.Listener
	double    map[int]bool
	dropAfter int
	mu        sync.Mutex
	conns     int
	wg        sync.WaitGroup
}

func newFakeIRC(t *testing.T, double map[int]bool, dropAfter int) *fakeIRC {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeIRC{l: l, double: double, dropAfter: dropAfter}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			first := s.conns == 1
			s.mu.Unlock()
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c, first) }()
		}
	}()
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	return s
}

func (s *fakeIRC) serve(c net.Conn, first bool) {
	defer c.Close()
	r := bufio.NewReader(c)
	asked := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		m, err := ParseLine(line)
		if err != nil {
			continue
		}
		var out []string
		switch m.Command {
		case "NICK":
			out = append(out, ":irc.test 001 "+m.Param(0)+" :welcome", "PING :irc.test")
		case "JOIN":
			out = append(out, ":obs!o@h JOIN "+m.Param(0), ":irc.test 353 obs = "+m.Param(0)+" :obs bot1",
				":irc.test 366 obs "+m.Param(0)+" :End of NAMES list", ":bot2!b@h JOIN "+m.Param(0))
		case "PRIVMSG":
			_, tag, _ := strings.Cut(m.Param(1), "| ")
			var id int
			if _, err := fmt.Sscanf(tag, "q%d", &id); err != nil {
				continue
			}
			out = append(out, ":bot1!b@h PRIVMSG "+m.Param(0)+" :"+tag+": f is up")
			if s.double[id] {
				out = append(out, ":bot2!b@h PRIVMSG "+m.Param(0)+" :"+tag+": f is up")
			}
			out = append(out, ":bot1!b@h PRIVMSG "+m.Param(0)+" :untagged chatter")
			asked++
		}
		for _, o := range out {
			if _, err := c.Write([]byte(o + "\r\n")); err != nil {
				return
			}
		}
		if first && s.dropAfter > 0 && asked == s.dropAfter {
			return
		}
	}
}

func TestObserver(t *testing.T) {
	srv := newFakeIRC(t, map[int]bool{1: true}, 3)
	o, err := NewObserver(ObserverConfig{Addr: srv.l.Addr().String(), Nick: "obs", Channel: "#chaos",
		Factoid: "f", Retry: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ask := func(n int) {
		for range n {
			if err := o.WaitJoined(ctx); err != nil {
				t.Fatal(err)
			}
			id := o.Ask()
			eventually(t, fmt.Sprintf("an answer to q%d", id), func() bool {
				q := o.Questions(id, id+1)
				return len(q) == 1 && (!q[0].Sent || len(q[0].Answers) > 0)
			})
		}
	}
	ask(3) // the server drops the connection after the third
	eventually(t, "the reconnect", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.conns == 2 && o.Joined()
	})
	ask(2)
	tally := TallyQuestions(o.Questions(0, o.NextID()))
	if tally.Asked < 4 || tally.Double != 1 || !reflect.DeepEqual(tally.DoubleIDs, []int{1}) || tally.Answerers["bot2"] != 0 {
		t.Fatalf("tally %+v; want >=4 asked, only q1 double, bot1 first everywhere", tally)
	}
	if len(o.Stray()) == 0 {
		t.Fatal("untagged channel lines were not kept as stray")
	}
	var sawDisconnect bool
	for _, e := range o.Events() {
		sawDisconnect = sawDisconnect || strings.HasPrefix(e.Text, "disconnected")
	}
	if !sawDisconnect {
		t.Fatalf("no disconnect event in %v", o.Events())
	}
}

func TestObserverAsking(t *testing.T) {
	srv := newFakeIRC(t, nil, 0)
	o, err := NewObserver(ObserverConfig{Addr: srv.l.Addr().String(), Nick: "obs", Channel: "#chaos",
		Factoid: "f", Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
	o.StartAsking()
	eventually(t, "ten answered questions", func() bool {
		return TallyQuestions(o.Questions(0, o.NextID())).Answered >= 10
	})
	o.StopAsking()
	n := o.NextID()
	o.StopAsking() // idempotent
	if o.NextID() != n {
		t.Fatal("questions asked after StopAsking")
	}
}

func TestObserverAskOnJoin(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			srv := newFakeIRC(t, nil, 0)
			o, err := NewObserver(ObserverConfig{Addr: srv.l.Addr().String(), Nick: "obs", Channel: "#chaos",
				Factoid: "f", AskOnJoin: on})
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := o.WaitJoined(ctx); err != nil {
				t.Fatal(err)
			}
			// bot2's JOIN follows the end of NAMES; a marker question
			// asked now is answered after anything bot2's JOIN caused.
			seen := "bot2 JOIN"
			if on {
				seen = "asked q0 on bot2's join"
			}
			eventually(t, seen, func() bool {
				for _, e := range o.Events() {
					if strings.HasPrefix(e.Text, seen) {
						return true
					}
				}
				return false
			})
			marker := o.Ask()
			eventually(t, "the marker's answer", func() bool {
				q := o.Questions(marker, marker+1)
				return len(q) == 1 && len(q[0].Answers) == 1
			})
			want := 1
			if on {
				want = 2 // the join question, then the marker
			}
			if n := o.NextID(); n != want {
				t.Fatalf("%d questions asked, want %d", n, want)
			}
			if tl := TallyQuestions(o.Questions(0, o.NextID())); tl.Answered != want {
				t.Fatalf("tally %+v, want %d answered", tl, want)
			}
		})
	}
}

func TestNewObserverErrors(t *testing.T) {
	if _, err := NewObserver(ObserverConfig{Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("NewObserver without nick, channel and factoid succeeded")
	}
}
