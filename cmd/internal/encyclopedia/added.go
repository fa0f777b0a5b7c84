package encyclopedia

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// errBadTimestamp is wrapped by parseAdded's errors; the caller adds the row.
var errBadTimestamp = errors.New("unrecognised timestamp")

// addedLayouts are tried in order after 'T' has been normalised to ' '.
// Go accepts a missing fraction for ".999999999", so each layout also covers
// whole seconds.
var addedLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00", // Python aware datetime: +00:00; also Z
	"2006-01-02 15:04:05.999999999 Z07:00",
	"2006-01-02 15:04:05.999999999-0700",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05.999999999", // Python naive datetime, SQLite CURRENT_TIMESTAMP
	"2006-01-02 15:04Z07:00",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseAdded parses the added column leniently: every form Python's
// str(datetime) and SQLite's date functions produce, with 'T' or ' ' between
// date and time, any fraction of a second, an optional zone ("+00:00",
// "+0000", "Z", " UTC"), and Unix seconds (integer or fractional) for rows
// written by other tools. Times without a zone are taken as UTC. An empty
// string (or NULL) is the zero time. The result is in UTC.
func parseAdded(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, ok := parseEpoch(s); ok {
		return t, nil
	}
	norm := s
	if len(norm) > 10 && (norm[10] == 'T' || norm[10] == 't') {
		norm = norm[:10] + " " + norm[11:]
	}
	if rest, ok := strings.CutSuffix(norm, " UTC"); ok {
		norm = rest
	} else if rest, ok := strings.CutSuffix(norm, " GMT"); ok {
		norm = rest
	}
	for _, layout := range addedLayouts {
		if t, err := time.Parse(layout, norm); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("added %q: %w", s, errBadTimestamp)
}

// parseEpoch accepts Unix seconds: digits with at most one '.'.
func parseEpoch(s string) (time.Time, bool) {
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0:
			dot = true
		default:
			return time.Time{}, false
		}
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(whole) > 12 { // beyond year 33000: not a timestamp
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		nsec = n
	}
	return time.Unix(sec, nsec).UTC(), true
}

// formatAdded writes t the way the later plugin versions did:
// str(datetime.datetime.now(pytz.timezone("UTC"))), i.e.
// "2009-05-01 12:34:56.789012+00:00", with the fraction left out when it is
// zero, as Python does. The zero time is written as NULL by the caller.
func formatAdded(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02 15:04:05") + "+00:00"
	}
	return t.Format("2006-01-02 15:04:05.000000") + "+00:00"
}
