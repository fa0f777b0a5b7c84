package chaos

import (
	"sync"
	"time"
)

// Stall is a gap in a ticker loop: the process (or the whole machine) did
// not run for Gap, ending at End.
type Stall struct {
	End time.Time
	Gap time.Duration
}

// StallMonitor records scheduling stalls of the process it runs in: it
// ticks every Every and records every gap longer than Threshold. On a
// loaded 2-core CI machine such stalls explain unanswered questions and
// gossip flaps that no injected fault caused. All methods are safe for
// concurrent use; Stop waits for the monitor's goroutine.
type StallMonitor struct {
	every, threshold time.Duration
	mu               sync.Mutex
	stalls           []Stall
	done             chan struct{}
	wg               sync.WaitGroup
	once             sync.Once
}

// NewStallMonitor starts a monitor. every <= 0 means 50ms; threshold <= 0
// means 500ms.
func NewStallMonitor(every, threshold time.Duration) *StallMonitor {
	if every <= 0 {
		every = 50 * time.Millisecond
	}
	if threshold <= 0 {
		threshold = 500 * time.Millisecond
	}
	m := &StallMonitor{every: every, threshold: threshold, done: make(chan struct{})}
	m.wg.Add(1)
	go m.run()
	return m
}

func (m *StallMonitor) run() {
	defer m.wg.Done()
	t := time.NewTicker(m.every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-m.done:
			return
		case now := <-t.C:
			now = time.Now() // the tick's own time is when it was due, not when it ran
			if gap := now.Sub(last); gap > m.threshold {
				m.mu.Lock()
				m.stalls = append(m.stalls, Stall{End: now, Gap: gap})
				m.mu.Unlock()
			}
			last = now
		}
	}
}

// Between returns the stalls that ended in [from, to].
func (m *StallMonitor) Between(from, to time.Time) []Stall {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Stall
	for _, s := range m.stalls {
		if !s.End.Before(from) && !s.End.After(to) {
			out = append(out, s)
		}
	}
	return out
}

// Stop stops the monitor; it is safe to call more than once.
func (m *StallMonitor) Stop() {
	m.once.Do(func() { close(m.done) })
	m.wg.Wait()
}
