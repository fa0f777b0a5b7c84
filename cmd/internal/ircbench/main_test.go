package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/e2e/irctest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	seq := func(n int) []time.Duration {
		var ds []time.Duration
		for i := n; i >= 1; i-- { // reversed: percentile must sort
			ds = append(ds, time.Duration(i)*ms)
		}
		return ds
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{3 * ms}, 90, 3 * ms},
		{"median odd", []time.Duration{5 * ms, 1 * ms, 3 * ms}, 50, 3 * ms},
		{"median even is lower middle", seq(4), 50, 2 * ms},
		{"p90 of 10", seq(10), 90, 9 * ms},
		{"p90 of 20", seq(20), 90, 18 * ms},
		{"p100 is max", seq(7), 100, 7 * ms},
		{"tiny p is min", seq(7), 0.1, 1 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("percentile reordered its input")
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		text string
		want string
		ok   bool
	}{
		{"q001 is ans-q001", "q001", true},
		{"q999 is ans-q999 ", "q999", true},
		{"q001 is something else", "", false},
		{"I don't know q001", "", false},
		{"xq001 is ans-q001", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := parseAnswer(tt.text)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseAnswer(%q) = %q, %v, want %q, %v", tt.text, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseLine(t *testing.T) {
	nick, cmd, params := irctest.ParseLine(":b1!b1@127.0.0.1 PRIVMSG #test :q001 is ans-q001")
	if nick != "b1" || cmd != "PRIVMSG" || !slices.Equal(params, []string{"#test", "q001 is ans-q001"}) {
		t.Errorf("got %q %q %q", nick, cmd, params)
	}
	nick, cmd, params = irctest.ParseLine("PING :irc.bench.test")
	if nick != "" || cmd != "PING" || !slices.Equal(params, []string{"irc.bench.test"}) {
		t.Errorf("got %q %q %q", nick, cmd, params)
	}
}

func TestAnalyze(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	asked := []question{
		{"q001", at(0)},   // answered by b1 before the kill
		{"q002", at(1)},   // in the gap, never answered
		{"q003", at(4.5)}, // after the gap, answered twice
		{"q004", at(5)},   // after the gap, never answered: lost
		{"q005", at(6)},   // answered only after the deadline: lost
		{"q006", at(7)},   // an old answer to the same name does not count
		{"q007", at(3.5)}, // in the gap but answered
	}
	answers := []answer{
		{at(0.5), "b1", "q001"},
		{at(0.2), "b2", "q006"}, // before the fault and before q006 was asked
		{at(3), "b2", "q999"},   // backlog of an earlier run: not a failover
		{at(4), "b2", "q007"},   // the first failover answer
		{at(5), "b2", "q003"},
		{at(6), "b3", "q003"},
		{at(20), "b2", "q005"},
	}
	w := runWindow{Fault: at(1), Victim: "b1", Deadline: at(15), GapEnd: at(4)}
	r := analyze(asked, answers, w)
	if !r.FailedOK || r.Failover != 3*time.Second {
		t.Errorf("failover = %v %v, want 3s", r.Failover, r.FailedOK)
	}
	check := func(what string, got, want []string) {
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("doubles", r.Doubles, []string{"q003"})
	check("gap", r.Gap, []string{"q002"})
	check("lost", r.Lost, []string{"q004", "q005", "q006"})
	check("late", r.Late, []string{"q005"})
	if want := []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}; !slices.Equal(r.Latencies, want) {
		t.Errorf("latencies = %v, want %v", r.Latencies, want)
	}
	if r.Asked != 7 {
		t.Errorf("asked = %d", r.Asked)
	}

	// Without a gap everything unanswered is lost, and no failover answer.
	r = analyze(asked[:2], answers[:1], runWindow{Fault: at(0), Victim: "b1", Deadline: at(15)})
	if r.FailedOK || len(r.Gap) != 0 || !slices.Equal(r.Lost, []string{"q002"}) {
		t.Errorf("no-gap run = %+v", r)
	}
}

func TestFmtDur(t *testing.T) {
	tests := []struct {
		d    time.Duration
		ok   bool
		want string
	}{
		{time.Second, false, "-"},
		{1500 * time.Microsecond, true, "1.5 ms"},
		{999 * time.Millisecond, true, "999.0 ms"},
		{2346 * time.Millisecond, true, "2.35 s"},
	}
	for _, tt := range tests {
		if got := fmtDur(tt.d, tt.ok); got != tt.want {
			t.Errorf("fmtDur(%v, %v) = %q, want %q", tt.d, tt.ok, got, tt.want)
		}
	}
}

func TestScenarioRow(t *testing.T) {
	s := &scenarioStats{Name: "crash"}
	s.add(runResult{Asked: 10, Failover: time.Second, FailedOK: true, Gap: []string{"q1"}, Latencies: []time.Duration{time.Second}})
	s.add(runResult{Asked: 10, Lost: []string{"q2"}, Doubles: []string{"q3"}})
	row := s.row()
	for _, want := range []string{"| crash | 2 |", "1.00 s", "1 runs without failover", "| 1 / 20 | 1 / 20 (0) | 1 / 20 |"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q", row, want)
		}
	}
	if n := strings.Count(row, "|"); n != strings.Count(strings.SplitN(tableHeader, "\n", 2)[0], "|") {
		t.Errorf("row has %d cells separators, header differs: %q", n, row)
	}
	empty := (&scenarioStats{Name: "term"}).row()
	if !strings.Contains(empty, "| term | 0 | - | - | - |") {
		t.Errorf("empty row = %q", empty)
	}
}
