package kvsync

import (
	"fmt"
	"sync"
	"time"
)

// Timestamp is a hybrid logical clock value packed into 64 bits: the upper
// 48 bits are physical Unix time in milliseconds (enough until the year
// 10889), the lower 16 bits a logical counter that orders events within the
// same millisecond. Comparing two Timestamps as integers orders them by
// (physical, logical). When the logical counter overflows it carries into
// the physical part, which keeps the clock monotonic.
type Timestamp uint64

const logicalBits = 16

// MakeTimestamp packs a physical time in Unix milliseconds and a logical
// counter.
func MakeTimestamp(ms int64, logical uint16) Timestamp {
	if ms < 0 {
		ms = 0
	}
	return Timestamp(uint64(ms)<<logicalBits | uint64(logical))
}

// Physical returns the physical part in Unix milliseconds.
func (t Timestamp) Physical() int64 { return int64(uint64(t) >> logicalBits) }

// Logical returns the logical counter.
func (t Timestamp) Logical() uint16 { return uint16(t) }

// Time returns the physical part as a time.Time (UTC).
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.Physical()).UTC() }

// String formats the timestamp as "<unix ms>.<logical>".
func (t Timestamp) String() string { return fmt.Sprintf("%d.%d", t.Physical(), t.Logical()) }

// Clock is a hybrid logical clock. It is safe for concurrent use.
//
// Now returns a timestamp greater than every timestamp it returned before and
// every timestamp passed to Update (the standard HLC send and receive rules),
// so a write made after seeing a record always sorts after that record.
type Clock struct {
	mu      sync.Mutex
	now     func() time.Time
	last    Timestamp
	maxSkew time.Duration
}

// NewClock returns a clock reading physical time from now (time.Now if nil).
// Remote timestamps more than maxSkew ahead of the physical clock are not
// absorbed by Update (0 means no limit), so one peer with a wildly wrong
// clock (or a forged message) cannot drag every clock into the future.
func NewClock(now func() time.Time, maxSkew time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now, maxSkew: maxSkew}
}

// Now returns a new timestamp for a local event.
func (c *Clock) Now() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := MakeTimestamp(c.now().UnixMilli(), 0)
	if pt > c.last {
		c.last = pt
	} else {
		c.last++
	}
	return c.last
}

// Update applies the HLC receive rule for a remote timestamp: the clock
// moves to max(local, remote, physical) and then ticks. It reports false
// (and leaves the clock alone) if remote is further ahead of physical time
// than the clock's skew limit.
func (c *Clock) Update(remote Timestamp) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	nowMs := c.now().UnixMilli()
	if c.maxSkew > 0 && remote.Physical() > nowMs+c.maxSkew.Milliseconds() {
		return false
	}
	pt := MakeTimestamp(nowMs, 0)
	m := max(c.last, remote)
	if pt > m {
		c.last = pt
	} else {
		c.last = m + 1
	}
	return true
}

// Last returns the most recent timestamp issued or absorbed.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
