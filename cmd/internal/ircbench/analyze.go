package main

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// question is one "!qNNN" asked by the observer.
type question struct {
	Name string
	At   time.Time
}

// answer is one factoid answer the observer saw in the test channel.
type answer struct {
	At   time.Time
	From string // sender nick
	Name string // the factoid it answers
}

// answerRE extracts the factoid name from an answer "qNNN is ans-qNNN".
var answerRE = regexp.MustCompile(`^(q\d+) is ans-q\d+$`)

// parseAnswer returns the factoid name a channel message answers, and false
// for any other message.
func parseAnswer(text string) (string, bool) {
	m := answerRE.FindStringSubmatch(strings.TrimSpace(text))
	if m == nil {
		return "", false
	}
	return m[1], true
}

// runResult is what one fault injection measured.
type runResult struct {
	Asked     int
	Failover  time.Duration // fault to the first answer by another bot
	FailedOK  bool          // another bot answered at all
	Doubles   []string      // questions answered more than once
	Lost      []string      // unanswered at the deadline (outside the gap)
	Late      []string      // of Lost and Gap: answered after the deadline
	Gap       []string      // crash only: unanswered, asked before gapEnd
	Latencies []time.Duration
}

// runWindow describes one run for analyze.
type runWindow struct {
	Fault    time.Time // when the fault was applied
	Victim   string    // nick of the bot that was faulted
	Deadline time.Time // a question still unanswered at Deadline is lost
	GapEnd   time.Time // unanswered questions asked before GapEnd go to Gap (zero: no gap)
}

// analyze matches answers to questions by factoid name (names are unique
// within a run: the pool wraps only after hundreds of seconds). An answer
// counts for a question only when it came after the question was asked.
func analyze(asked []question, answers []answer, w runWindow) runResult {
	r := runResult{Asked: len(asked)}
	byName := map[string][]answer{}
	for _, a := range answers {
		byName[a.Name] = append(byName[a.Name], a)
	}
	for _, q := range asked {
		var got []answer
		for _, a := range byName[q.Name] {
			if !a.At.Before(q.At) {
				got = append(got, a)
			}
		}
		slices.SortFunc(got, func(a, b answer) int { return a.At.Compare(b.At) })
		if len(got) > 1 {
			r.Doubles = append(r.Doubles, q.Name)
		}
		if len(got) == 0 || got[0].At.After(w.Deadline) {
			if len(got) > 0 {
				r.Late = append(r.Late, q.Name)
			}
			if !w.GapEnd.IsZero() && q.At.Before(w.GapEnd) {
				r.Gap = append(r.Gap, q.Name)
			} else {
				r.Lost = append(r.Lost, q.Name)
			}
			continue
		}
		r.Latencies = append(r.Latencies, got[0].At.Sub(q.At))
	}
	// Failover: the first answer by another bot to a question of this
	// run. Answers to older questions (a previous run's backlog still
	// draining from a bot's send queue, probes) are not a failover.
	for _, q := range asked {
		for _, a := range byName[q.Name] {
			if a.From == w.Victim || a.At.Before(w.Fault) || a.At.Before(q.At) {
				continue
			}
			if d := a.At.Sub(w.Fault); !r.FailedOK || d < r.Failover {
				r.Failover, r.FailedOK = d, true
			}
		}
	}
	return r
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of ds,
// and 0 for an empty slice.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// fmtDur formats d in ms below 1 s and in seconds with 2 decimals above,
// or "-" for a missing value.
func fmtDur(d time.Duration, ok bool) string {
	switch {
	case !ok:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// scenarioStats aggregates the runs of one scenario.
type scenarioStats struct {
	Name      string
	Runs      int
	NoFail    int // runs where no other bot answered
	Failovers []time.Duration
	Asked     int
	Doubles   int
	Lost      int
	Late      int
	Gap       int
	Latencies []time.Duration
}

func (s *scenarioStats) add(r runResult) {
	s.Runs++
	if r.FailedOK {
		s.Failovers = append(s.Failovers, r.Failover)
	} else {
		s.NoFail++
	}
	s.Asked += r.Asked
	s.Doubles += len(r.Doubles)
	s.Lost += len(r.Lost)
	s.Gap += len(r.Gap)
	s.Late += len(r.Late)
	s.Latencies = append(s.Latencies, r.Latencies...)
}

const tableHeader = "| scenario | runs | failover median | p90 | max | double answers | lost questions (answered late) | lost in crash gap (≤3 s after kill) | answer latency median | p90 |\n" +
	"|---|---|---|---|---|---|---|---|---|---|"

// row renders one markdown table row.
func (s *scenarioStats) row() string {
	ok := len(s.Failovers) > 0
	maxCell := fmtDur(slices.Max(append([]time.Duration{0}, s.Failovers...)), ok)
	if s.NoFail > 0 {
		maxCell += fmt.Sprintf(" (%d runs without failover)", s.NoFail)
	}
	gap := "-"
	if s.Name == "crash" {
		gap = fmt.Sprintf("%d / %d", s.Gap, s.Asked)
	}
	lat := len(s.Latencies) > 0
	return fmt.Sprintf("| %s | %d | %s | %s | %s | %d / %d | %d / %d (%d) | %s | %s | %s |",
		s.Name, s.Runs,
		fmtDur(percentile(s.Failovers, 50), ok), fmtDur(percentile(s.Failovers, 90), ok), maxCell,
		s.Doubles, s.Asked, s.Lost, s.Asked, s.Late, gap,
		fmtDur(percentile(s.Latencies, 50), lat), fmtDur(percentile(s.Latencies, 90), lat))
}
