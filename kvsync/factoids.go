package kvsync

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	badger "github.com/dgraph-io/badger/v4"
)

// Limits on user data. Names and values travel on IRC, which cannot carry
// NUL, CR or LF, so neither may contain them.
const (
	MaxNameBytes    = 100  // factoid name, after lowercasing
	MaxValueBytes   = 4096 // factoid value: several IRC lines
	MaxAuthorBytes  = 255  // author / hostmask of an edit
	MaxChannelBytes = 50   // channel name (RFC 2812 limit)
	MaxMaskBytes    = 255  // editor mask
)

// Factoid is an Encyclopedia-style factoid.
type Factoid struct {
	Name       string // lowercased
	Value      string
	Author     string // who created it
	Added      time.Time
	UpdatedBy  string // who changed it last ("" if never)
	Updated    time.Time
	Forgotten  bool  // soft-deleted
	Popularity int64 // lookups, summed over all nodes' counters
}

// LogEntry is one edit of a factoid. A forget has NewValue "", an unforget
// OldValue "" (both with the value in the other field); a creation has
// OldValue "".
type LogEntry struct {
	Name     string
	Author   string
	At       time.Time
	OldValue string
	NewValue string
}

// Demotion records that Node failed at At; the mesh moves demoted nodes to
// the bottom of the order, most recent failure last.
type Demotion struct {
	Node string
	At   time.Time
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// normalizeName validates a factoid name and returns it lowercased.
func normalizeName(name string) (string, error) {
	if name == "" {
		return "", invalid("factoid name is empty")
	}
	if !utf8.ValidString(name) {
		return "", invalid("factoid name is not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", invalid("factoid name contains control character %U", r)
		}
	}
	n := strings.ToLower(name)
	if len(n) > MaxNameBytes {
		return "", invalid("factoid name is %d bytes, limit %d", len(n), MaxNameBytes)
	}
	return n, nil
}

func validateValue(v string) error {
	if v == "" {
		return invalid("factoid value is empty")
	}
	if len(v) > MaxValueBytes {
		return invalid("factoid value is %d bytes, limit %d", len(v), MaxValueBytes)
	}
	if !utf8.ValidString(v) {
		return invalid("factoid value is not valid UTF-8")
	}
	if i := strings.IndexAny(v, "\x00\r\n"); i >= 0 {
		return invalid("factoid value contains NUL, CR or LF at byte %d", i)
	}
	return nil
}

// validateText checks free text such as authors and node names.
func validateText(what, v string, limit int, allowEmpty bool) error {
	if v == "" && !allowEmpty {
		return invalid("%s is empty", what)
	}
	if len(v) > limit {
		return invalid("%s is %d bytes, limit %d", what, len(v), limit)
	}
	if !utf8.ValidString(v) {
		return invalid("%s is not valid UTF-8", what)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return invalid("%s contains control character %U", what, r)
		}
	}
	return nil
}

func validateChannel(name string) error {
	if len(name) < 2 || (name[0] != '#' && name[0] != '&') {
		return invalid("channel %q must start with # or & and have a name", name)
	}
	if len(name) > MaxChannelBytes {
		return invalid("channel name is %d bytes, limit %d", len(name), MaxChannelBytes)
	}
	if !utf8.ValidString(name) {
		return invalid("channel name is not valid UTF-8")
	}
	for _, r := range name {
		if r == ' ' || r == ',' || unicode.IsControl(r) {
			return invalid("channel %q contains space, comma or control character", name)
		}
	}
	return nil
}

// --- value encodings (Record.Value per keyspace) ---

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func timeNs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

const contentVersion = 1

func encodeFactoid(f Factoid) []byte {
	b := []byte{contentVersion}
	b = appendString(b, f.Value)
	b = appendString(b, f.Author)
	b = appendString(b, f.UpdatedBy)
	b = binary.AppendVarint(b, timeNs(f.Added))
	b = binary.AppendVarint(b, timeNs(f.Updated))
	var flags byte
	if f.Forgotten {
		flags = 1
	}
	return append(b, flags)
}

func (r *reader) str(what string) string {
	return string(r.bytesN(r.uvarint(what+" length"), what))
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

func decodeFactoid(name string, v []byte) (Factoid, error) {
	r := &reader{b: v}
	if r.byte1("version") != contentVersion {
		r.fail("bad factoid version")
	}
	f := Factoid{Name: name, Value: r.str("value"), Author: r.str("author"), UpdatedBy: r.str("updated by")}
	f.Added = nsTime(r.varint("added"))
	f.Updated = nsTime(r.varint("updated"))
	switch r.byte1("flags") {
	case 0:
	case 1:
		f.Forgotten = true
	default:
		r.fail("bad factoid flags")
	}
	if err := r.end(); err != nil {
		return Factoid{}, fmt.Errorf("factoid %q: %w", name, err)
	}
	return f, nil
}

func encodeLog(e LogEntry) []byte {
	b := []byte{contentVersion}
	b = appendString(b, e.Author)
	b = binary.AppendVarint(b, timeNs(e.At))
	b = appendString(b, e.OldValue)
	return appendString(b, e.NewValue)
}

func decodeLog(name string, v []byte) (LogEntry, error) {
	r := &reader{b: v}
	if r.byte1("version") != contentVersion {
		r.fail("bad log version")
	}
	e := LogEntry{Name: name, Author: r.str("author")}
	e.At = nsTime(r.varint("at"))
	e.OldValue = r.str("old value")
	e.NewValue = r.str("new value")
	if err := r.end(); err != nil {
		return LogEntry{}, fmt.Errorf("log entry of %q: %w", name, err)
	}
	return e, nil
}

func logKey(name string, ts Timestamp, suffix string) string {
	b := make([]byte, 0, len(name)+10+len(suffix))
	b = append(b, name...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	return string(append(b, suffix...))
}

func counterKey(name, node string) string { return name + "\x00" + node }

func decodeCounter(v []byte) (int64, error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || w != len(v) || n > 1<<62 {
		return 0, fmt.Errorf("%w: bad counter value", ErrInvalid)
	}
	return int64(n), nil
}

func decodeDemotion(v []byte) (time.Time, error) {
	n, w := binary.Varint(v)
	if w <= 0 || w != len(v) {
		return time.Time{}, fmt.Errorf("%w: bad demotion value", ErrInvalid)
	}
	return nsTime(n), nil
}

// validateContents checks that replicated records received from a peer
// have well-formed keys and values for their keyspace.
func validateContents(rs []record) error {
	for _, r := range rs {
		if err := validateContent(r); err != nil {
			return fmt.Errorf("record %q in %s: %w", r.key, keyspaceName(r.ks), err)
		}
	}
	return nil
}

func validateContent(r record) error {
	if err := r.validate(); err != nil {
		return err
	}
	name := groupKey(r.ks, r.key)
	switch r.ks {
	case ksFactoids, ksLog, ksPopularity:
		if n, err := normalizeName(name); err != nil {
			return err
		} else if n != name {
			return invalid("factoid name %q is not lowercased", name)
		}
	}
	switch r.ks {
	case ksLog:
		if len(r.key) < len(name)+1+8+1 {
			return invalid("short log key")
		}
	case ksPopularity:
		if len(r.key) < len(name)+2 {
			return invalid("short counter key")
		}
	case ksChannels:
		if err := validateChannel(r.key); err != nil {
			return err
		}
	case ksDemotions:
		if err := validateText("node name", r.key, maxNodeLen, false); err != nil {
			return err
		}
	}
	if r.tomb {
		return nil
	}
	var err error
	switch r.ks {
	case ksFactoids:
		var f Factoid
		if f, err = decodeFactoid(name, r.value); err == nil {
			err = validateValue(f.Value)
		}
	case ksLog:
		_, err = decodeLog(name, r.value)
	case ksPopularity:
		_, err = decodeCounter(r.value)
	case ksChannels:
		if !strings.EqualFold(string(r.value), r.key) {
			err = invalid("channel value %q does not match key", r.value)
		}
	case ksDemotions:
		_, err = decodeDemotion(r.value)
	}
	return err
}

// --- factoid API ---

func (s *Store) newRecord(ks byte, key string, value []byte) record {
	return record{ks: ks, key: key, value: value, ts: s.clock.Now(), node: s.cfg.Node}
}

func (s *Store) open() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// popularity sums every node's counter for name (plus unflushed local
// lookups).
func (s *Store) popularity(txn *badger.Txn, name string) (int64, error) {
	var sum int64
	p := storageKey(ksPopularity, name+"\x00")
	var derr error
	err := scanPrefix(txn, p, func(r record, _ uint64) bool {
		if r.tomb {
			return true
		}
		n, err := decodeCounter(r.value)
		if err != nil {
			derr = err
			return false
		}
		sum += n
		return true
	})
	if err == nil {
		err = derr
	}
	s.popMu.Lock()
	sum += s.pop[name]
	s.popMu.Unlock()
	return sum, err
}

func getFactoid(txn *badger.Txn, name string) (Factoid, bool, error) {
	r, had, err := getRecord(txn, ksFactoids, name)
	if err != nil || !had || r.tomb {
		return Factoid{}, false, err
	}
	f, err := decodeFactoid(name, r.value)
	if err != nil {
		return Factoid{}, false, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return f, true, nil
}

// GetFactoid returns the factoid (names are case-insensitive). Forgotten
// factoids are returned with Forgotten set; ErrNotFound if it never existed.
func (s *Store) GetFactoid(name string) (Factoid, error) {
	n, err := normalizeName(name)
	if err != nil {
		return Factoid{}, err
	}
	if err := s.open(); err != nil {
		return Factoid{}, err
	}
	var f Factoid
	err = s.view("get factoid", func(txn *badger.Txn) error {
		var ok bool
		var err error
		if f, ok, err = getFactoid(txn, n); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("factoid %q: %w", n, ErrNotFound)
		}
		f.Popularity, err = s.popularity(txn, n)
		return err
	})
	return f, err
}

// changeFactoid runs the read-modify-write of one factoid plus its log
// entry in one durable transaction.
func (s *Store) changeFactoid(op, name string, fn func(old Factoid, exists bool) (Factoid, LogEntry, error)) (Factoid, error) {
	if err := s.open(); err != nil {
		return Factoid{}, err
	}
	var out Factoid
	_, err := s.update(op, true, func(w *writeTxn) error {
		old, exists, err := getFactoid(w.txn, name)
		if err != nil {
			return err
		}
		f, e, err := fn(old, exists)
		if err != nil {
			return err
		}
		fr := s.newRecord(ksFactoids, name, encodeFactoid(f))
		if _, err := w.put(fr); err != nil {
			return err
		}
		if _, err := w.put(s.newRecord(ksLog, logKey(name, fr.ts, s.cfg.Node), encodeLog(e))); err != nil {
			return err
		}
		out = f
		out.Popularity, err = s.popularity(w.txn, name)
		return err
	})
	return out, err
}

// SetFactoid creates or replaces a factoid (un-forgetting it) and appends a
// log entry with the old value. The write is durable when it returns nil.
func (s *Store) SetFactoid(name, value, author string) (Factoid, error) {
	n, err := normalizeName(name)
	if err != nil {
		return Factoid{}, err
	}
	if err := validateValue(value); err != nil {
		return Factoid{}, err
	}
	if err := validateText("author", author, MaxAuthorBytes, true); err != nil {
		return Factoid{}, err
	}
	now := s.cfg.Now().UTC()
	return s.changeFactoid("set factoid", n, func(old Factoid, exists bool) (Factoid, LogEntry, error) {
		e := LogEntry{Name: n, Author: author, At: now, NewValue: value}
		if !exists {
			return Factoid{Name: n, Value: value, Author: author, Added: now}, e, nil
		}
		e.OldValue = old.Value
		if old.Forgotten {
			e.OldValue = ""
		}
		f := old
		f.Value, f.UpdatedBy, f.Updated, f.Forgotten = value, author, now, false
		return f, e, nil
	})
}

// ForgetFactoid soft-deletes a factoid and logs it; ErrNotFound if it does
// not exist or is already forgotten.
func (s *Store) ForgetFactoid(name, author string) error {
	return s.setForgotten("forget factoid", name, author, true)
}

// UnforgetFactoid restores a forgotten factoid; ErrNotFound if it does not
// exist or is not forgotten.
func (s *Store) UnforgetFactoid(name, author string) error {
	return s.setForgotten("unforget factoid", name, author, false)
}

func (s *Store) setForgotten(op, name, author string, forget bool) error {
	n, err := normalizeName(name)
	if err != nil {
		return err
	}
	if err := validateText("author", author, MaxAuthorBytes, true); err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	_, err = s.changeFactoid(op, n, func(old Factoid, exists bool) (Factoid, LogEntry, error) {
		if !exists || old.Forgotten == forget {
			state := "not forgotten"
			if forget {
				state = "already forgotten"
			}
			if !exists {
				state = "absent"
			}
			return Factoid{}, LogEntry{}, fmt.Errorf("factoid %q %s: %w", n, state, ErrNotFound)
		}
		e := LogEntry{Name: n, Author: author, At: now}
		if forget {
			e.OldValue = old.Value
		} else {
			e.NewValue = old.Value
		}
		f := old
		f.Forgotten, f.UpdatedBy, f.Updated = forget, author, now
		return f, e, nil
	})
	return err
}

// FactoidLog returns the edit history of a factoid, oldest first;
// ErrNotFound if there is neither a factoid nor a history.
func (s *Store) FactoidLog(name string) ([]LogEntry, error) {
	n, err := normalizeName(name)
	if err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	var out []LogEntry
	err = s.view("factoid log", func(txn *badger.Txn) error {
		var derr error
		err := scanPrefix(txn, storageKey(ksLog, n+"\x00"), func(r record, _ uint64) bool {
			if r.tomb {
				return true
			}
			e, err := decodeLog(n, r.value)
			if err != nil {
				derr = fmt.Errorf("%w: %w", ErrCorrupt, err)
				return false
			}
			out = append(out, e)
			return true
		})
		if err != nil {
			return err
		}
		if derr != nil {
			return derr
		}
		if len(out) == 0 {
			if _, ok, err := getFactoid(txn, n); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("factoid %q: %w", n, ErrNotFound)
			}
		}
		return nil
	})
	// Keys sort by HLC; imported entries sort by their time. Order by time,
	// keeping the key order for equal times.
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, err
}

// SearchFactoids returns factoids (not forgotten) in which every word
// occurs in the name or the value, case-insensitively, sorted by name; at
// most limit (all if limit <= 0).
func (s *Store) SearchFactoids(words string, limit int) ([]Factoid, error) {
	ws := strings.Fields(strings.ToLower(words))
	if len(ws) == 0 {
		return nil, invalid("search words are empty")
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	var out []Factoid
	err := s.view("search factoids", func(txn *badger.Txn) error {
		var derr error
		err := scanPrefix(txn, keyspacePrefix(ksFactoids), func(r record, _ uint64) bool {
			if r.tomb {
				return true
			}
			f, err := decodeFactoid(r.key, r.value)
			if err != nil {
				derr = fmt.Errorf("%w: %w", ErrCorrupt, err)
				return false
			}
			if f.Forgotten {
				return true
			}
			lv := strings.ToLower(f.Value)
			for _, w := range ws {
				if !strings.Contains(f.Name, w) && !strings.Contains(lv, w) {
					return true
				}
			}
			out = append(out, f)
			return true
		})
		if err != nil {
			return err
		}
		if derr != nil {
			return derr
		}
		slices.SortFunc(out, func(a, b Factoid) int { return strings.Compare(a.Name, b.Name) })
		if limit > 0 && len(out) > limit {
			out = out[:limit]
		}
		for i := range out {
			if out[i].Popularity, err = s.popularity(txn, out[i].Name); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// CountLookup adds one to this node's popularity counter of name. Counts
// are batched in memory and written (without a per-lookup fsync) and
// broadcast every PopularityFlush, and on Close; a crash loses at most that
// much counting.
func (s *Store) CountLookup(name string) error {
	n, err := normalizeName(name)
	if err != nil {
		return err
	}
	if err := s.open(); err != nil {
		return err
	}
	s.popMu.Lock()
	s.pop[n]++
	s.popMu.Unlock()
	return nil
}

func (s *Store) popularityLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PopularityFlush)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.flushPopularity()
		}
	}
}

func (s *Store) flushPopularity() {
	s.popMu.Lock()
	if len(s.pop) == 0 {
		s.popMu.Unlock()
		return
	}
	pending := s.pop
	s.pop = map[string]int64{}
	s.popMu.Unlock()
	_, err := s.update("flush popularity", true, func(w *writeTxn) error {
		for name, d := range pending {
			key := counterKey(name, s.cfg.Node)
			old, had, err := w.get(ksPopularity, key)
			if err != nil {
				return err
			}
			var n int64
			if had && !old.tomb {
				if n, err = decodeCounter(old.value); err != nil {
					return fmt.Errorf("%w: %w", ErrCorrupt, err)
				}
			}
			if _, err := w.put(s.newRecord(ksPopularity, key, binary.AppendUvarint(nil, uint64(n+d)))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("popularity flush failed", "err", err)
		s.popMu.Lock()
		for k, d := range pending {
			s.pop[k] += d
		}
		s.popMu.Unlock()
	}
}

// ImportFactoid stores an imported factoid and its history (used by
// `meshctl import encyclopedia`). It is idempotent: what is already stored
// identically is not written again, and re-running an import with
// identical data writes nothing. created reports whether the factoid did
// not exist before. Log entries get keys derived from their content, and
// the imported popularity is kept in a counter of its own ("~import").
// The write is durable and broadcast when it returns nil.
func (s *Store) ImportFactoid(f Factoid, log []LogEntry) (created bool, err error) {
	n, err := s.importItems([]ImportItem{{Factoid: f, Log: log}}, true)
	return n == 1, err
}

// ImportItem is one factoid with its history for ImportFactoids.
type ImportItem struct {
	Factoid Factoid
	Log     []LogEntry
}

// ImportFactoids is ImportFactoid for many factoids: every item is
// validated first (nothing is written if one is invalid), then they are
// written in durable transactions of 256 items. The records are not
// broadcast (a bulk import would flood the mesh); anti-entropy replicates
// them within a few SyncIntervals. created counts factoids that did not
// exist before.
func (s *Store) ImportFactoids(items []ImportItem) (created int, err error) {
	return s.importItems(items, false)
}

func validateImport(idx int, it ImportItem) (Factoid, int64, error) {
	f := it.Factoid
	n, err := normalizeName(f.Name)
	if err == nil {
		err = validateValue(f.Value)
	}
	for _, v := range []string{f.Author, f.UpdatedBy} {
		if err == nil {
			err = validateText("author", v, MaxAuthorBytes, true)
		}
	}
	if err == nil && f.Popularity < 0 {
		err = invalid("popularity %d is negative", f.Popularity)
	}
	for i, e := range it.Log {
		if err == nil {
			err = validateText(fmt.Sprintf("log entry %d author", i), e.Author, MaxAuthorBytes, true)
		}
		for _, v := range []string{e.OldValue, e.NewValue} {
			if err == nil && v != "" {
				if verr := validateValue(v); verr != nil {
					err = fmt.Errorf("log entry %d: %w", i, verr)
				}
			}
		}
	}
	if err != nil {
		return Factoid{}, 0, fmt.Errorf("import item %d (%q): %w", idx, f.Name, err)
	}
	f.Name = n
	pop := f.Popularity
	f.Popularity = 0
	f.Added, f.Updated = utcOrZero(f.Added), utcOrZero(f.Updated)
	return f, pop, nil
}

func (s *Store) importItems(items []ImportItem, broadcast bool) (int, error) {
	type prepared struct {
		f   Factoid
		pop int64
		log []LogEntry
	}
	ps := make([]prepared, len(items))
	for i, it := range items {
		f, pop, err := validateImport(i, it)
		if err != nil {
			return 0, err
		}
		ps[i] = prepared{f, pop, it.Log}
	}
	if err := s.open(); err != nil {
		return 0, err
	}
	created := 0
	for len(ps) > 0 {
		chunk := ps[:min(len(ps), 256)]
		ps = ps[len(chunk):]
		n := 0
		_, err := s.update("import factoids", broadcast, func(w *writeTxn) error {
			n = 0
			for _, p := range chunk {
				c, err := s.importOne(w, p.f, p.pop, p.log)
				if err != nil {
					return err
				}
				if c {
					n++
				}
			}
			return nil
		})
		if err != nil {
			return created, err
		}
		created += n
	}
	return created, nil
}

func (s *Store) importOne(w *writeTxn, f Factoid, pop int64, log []LogEntry) (created bool, err error) {
	n := f.Name
	old, had, err := w.get(ksFactoids, n)
	if err != nil {
		return false, err
	}
	created = !had || old.tomb
	want := encodeFactoid(f)
	if created || !bytes.Equal(old.value, want) {
		if _, err := w.put(s.newRecord(ksFactoids, n, want)); err != nil {
			return false, err
		}
	}
	for _, e := range log {
		e.Name = n
		e.At = utcOrZero(e.At)
		v := encodeLog(e)
		key := logKey(n, MakeTimestamp(e.At.UnixMilli(), 0), fmt.Sprintf("~import-%016x", xxhash.Sum64(v)))
		cur, had, err := w.get(ksLog, key)
		if err != nil {
			return false, err
		}
		if had && !cur.tomb && bytes.Equal(cur.value, v) {
			continue
		}
		if _, err := w.put(s.newRecord(ksLog, key, v)); err != nil {
			return false, err
		}
	}
	if pop > 0 {
		key := counterKey(n, "~import")
		v := binary.AppendUvarint(nil, uint64(pop))
		cur, had, err := w.get(ksPopularity, key)
		if err != nil {
			return false, err
		}
		if !had || cur.tomb || !bytes.Equal(cur.value, v) {
			if _, err := w.put(s.newRecord(ksPopularity, key, v)); err != nil {
				return false, err
			}
		}
	}
	return created, nil
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}
