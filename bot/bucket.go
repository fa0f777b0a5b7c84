package bot

import "time"

// tokenBucket is a plain token bucket: it holds up to burst tokens and
// refills rate tokens per second. It is not safe for concurrent use; the
// sender goroutine owns it.
type tokenBucket struct {
	rate   float64 // tokens per second
	burst  float64 // capacity
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) *tokenBucket {
	if burst < 1 {
		burst = 1
	}
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

func (b *tokenBucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
		b.last = now
	}
}

// take removes one token if available and returns 0, else it returns how
// long to wait until one token is available (and takes nothing).
func (b *tokenBucket) take(now time.Time) time.Duration {
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	if b.rate <= 0 {
		return time.Hour
	}
	need := (1 - b.tokens) / b.rate
	d := time.Duration(need * float64(time.Second))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}
