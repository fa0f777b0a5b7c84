// Package encyclopedia reads the SQLite database of the Supybot/Limnoria
// Encyclopedia plugin that the Ubuntu bots (ubotu, ubottu) used, so that
// meshctl can import its factoids.
//
// The plugin keeps two tables:
//
//	facts(id, author, name, added, value, popularity)
//	log(id, author, name, added, oldvalue)
//
// and these conventions, which this package keeps:
//
//   - A forgotten factoid stays in facts with "<deleted>" glued in front of
//     its value ('<deleted>' + value, no space). [Fact.Forgotten] reports it
//     and [Fact.Value] is the value without the marker. The plugin hides such
//     rows with LIKE '<deleted>%', which ignores ASCII case, and so does this
//     package.
//   - "<alias> target" and "<reply> text" values are kept verbatim in
//     [Fact.Value]; [Fact.Alias] and [Fact.Reply] decode them the way the
//     plugin does.
//   - Channel variants ("name-#channel") and second entries ("name-also",
//     "name-#channel-also") are ordinary rows; they are returned as facts
//     under their full names.
//   - added is Python's str(datetime.datetime.now()), e.g.
//     "2007-05-01 12:34:56.789012" (older plugin versions, local time) or
//     "2009-05-01 12:34:56.789012+00:00" (later versions, UTC). Times without
//     a zone are read as UTC.
//   - Every edit (including forget and unforget) appends a log row holding
//     the value before the edit.
//
// A DB is safe for concurrent use, except that calls to [DB.Each] are
// serialised: a second Each waits for the first to finish.
package encyclopedia

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotEncyclopedia is returned by [Open] for a file that is not an SQLite
// database or whose schema is not the Encyclopedia plugin's. The wrapping
// error says what is missing.
var ErrNotEncyclopedia = errors.New("not an Encyclopedia database")

// deletedMarker is what the plugin glues in front of a forgotten value.
const deletedMarker = "<deleted>"

// sqliteMagic is the first 16 bytes of every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

// requiredColumns is the schema the plugin's queries rely on.
var requiredColumns = []struct {
	table   string
	columns []string
}{
	{"facts", []string{"id", "author", "name", "added", "value", "popularity"}},
	{"log", []string{"id", "author", "name", "added", "oldvalue"}},
}

// LogEntry is one edit of a factoid: who changed it, when, and the value it
// had before the change (verbatim, so a forget's entry holds the live value
// and an unforget's entry holds "<deleted>..." ).
type LogEntry struct {
	Author   string
	At       time.Time // UTC; zero when the row has no timestamp
	OldValue string
}

// Fact is one factoid of an Encyclopedia database.
type Fact struct {
	Name, Value, Author string     // Value without the <deleted> marker when Forgotten
	Added               time.Time  // UTC; zero when the row has no timestamp
	Popularity          int64      // lookups counted by the plugin; NULL reads as 0
	Forgotten           bool       // the value carried the <deleted> marker
	Log                 []LogEntry // oldest first (log row id order)
}

// Alias reports whether the value is an "<alias> target" and returns the
// target lowercased and trimmed, as the plugin resolves it. The marker is
// matched without regard to ASCII case, as in the plugin.
func (f Fact) Alias() (target string, ok bool) {
	const marker = "<alias>"
	if len(f.Value) < len(marker) || !strings.EqualFold(f.Value[:len(marker)], marker) {
		return "", false
	}
	return strings.ToLower(strings.TrimSpace(f.Value[len(marker):])), true
}

// Reply reports whether the value is a "<reply> text" (the text is said as
// is, without "name is") and returns the trimmed text. As in the plugin the
// marker is case-sensitive.
func (f Fact) Reply() (text string, ok bool) {
	const marker = "<reply>"
	rest, ok := strings.CutPrefix(f.Value, marker)
	if !ok {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// DB is an Encyclopedia database opened read-only.
type DB struct {
	path string
	db   *sql.DB

	eachMu sync.Mutex // serialises Each

	mu      sync.Mutex // guards skipped
	skipped []string
}

// Open opens the Encyclopedia database at path read-only. It never creates
// or modifies the file. Errors: a missing file wraps fs.ErrNotExist; a file
// that is not SQLite, or lacks the facts or log table or one of their
// columns, wraps [ErrNotEncyclopedia] and names what is missing.
func Open(path string) (*DB, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open encyclopedia: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open encyclopedia %s: %w: not a regular file", path, ErrNotEncyclopedia)
	}
	if err := checkMagic(path); err != nil {
		return nil, fmt.Errorf("open encyclopedia %s: %w", path, err)
	}
	dsn, err := fileURI(path, "ro")
	if err != nil {
		return nil, fmt.Errorf("open encyclopedia %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open encyclopedia %s: %w", path, err)
	}
	if err := checkSchema(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open encyclopedia %s: %w", path, err)
	}
	return &DB{path: path, db: db}, nil
}

// checkMagic rejects files that do not start with the SQLite header; SQLite
// itself would treat an empty file as an empty database.
func checkMagic(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, len(sqliteMagic))
	if _, err := io.ReadFull(f, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: file too short for an SQLite database", ErrNotEncyclopedia)
		}
		return err
	}
	if string(head) != sqliteMagic {
		return fmt.Errorf("%w: not an SQLite 3 database (bad header)", ErrNotEncyclopedia)
	}
	return nil
}

// fileURI builds an SQLite URI for path with the given mode, escaping the
// characters (?, #, %) that would otherwise end or change the path.
func fileURI(path, mode string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=" + mode}
	return u.String(), nil
}

// checkSchema verifies that the tables and columns the plugin uses exist.
func checkSchema(db *sql.DB) error {
	var problems []string
	for _, t := range requiredColumns {
		have, err := tableColumns(db, t.table)
		if err != nil {
			return mapSQLiteErr(err)
		}
		if len(have) == 0 {
			problems = append(problems, "no table "+t.table)
			continue
		}
		var missing []string
		for _, c := range t.columns {
			if !have[c] {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("table %s lacks column(s) %s", t.table, strings.Join(missing, ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrNotEncyclopedia, strings.Join(problems, "; "))
	}
	return nil
}

// tableColumns returns the lowercased column names of table; empty if the
// table does not exist.
func tableColumns(db *sql.DB, table string) (map[string]bool, error) {
	rows, err := db.Query("SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		cols[strings.ToLower(name)] = true
	}
	return cols, rows.Err()
}

// mapSQLiteErr turns SQLite's "not a database" and "corrupt" results into
// ErrNotEncyclopedia.
func mapSQLiteErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %v", ErrNotEncyclopedia, err)
		}
	}
	return err
}

// Count returns the number of rows in facts, including forgotten factoids
// and rows that [DB.Each] would skip.
func (d *DB) Count() (int, error) {
	var n int
	if err := d.db.QueryRow("SELECT COUNT(*) FROM facts").Scan(&n); err != nil {
		return 0, fmt.Errorf("count facts in %s: %w", d.path, mapSQLiteErr(err))
	}
	return n, nil
}

// Skipped returns a description of every row the last (or running) call of
// [DB.Each] skipped, each naming its table and row id, e.g.
// `facts row 12 ("foo"): value is not valid UTF-8`. The slice is a copy.
func (d *DB) Skipped() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.skipped...)
}

func (d *DB) skip(format string, args ...any) {
	d.mu.Lock()
	d.skipped = append(d.skipped, fmt.Sprintf(format, args...))
	d.mu.Unlock()
}

// Close closes the database. It is safe to call more than once.
func (d *DB) Close() error {
	return d.db.Close()
}

// Each calls fn for every importable factoid, ordered by name (byte order),
// with its edit log attached. Rows are streamed: memory use does not grow
// with the size of the database.
//
// Rows that cannot be imported are skipped and described in [DB.Skipped]:
// a name that is empty, not valid UTF-8 or contains NUL; a value, author or
// popularity that is unusable; duplicate names (the plugin answers from the
// first live row, so that one is kept); log rows that are invalid or belong
// to no factoid. An added timestamp that cannot be parsed in any known
// format is an error naming the row, and stops the iteration.
//
// If fn returns an error, Each stops and returns that error unchanged. fn
// runs on the caller's goroutine and may call Count and Skipped, but not
// Each.
func (d *DB) Each(fn func(Fact) error) error {
	d.eachMu.Lock()
	defer d.eachMu.Unlock()
	d.mu.Lock()
	d.skipped = nil
	d.mu.Unlock()

	facts, err := d.db.Query(`SELECT id, CAST(name AS BLOB), CAST(value AS BLOB), CAST(author AS BLOB),
		CAST(added AS TEXT), popularity FROM facts ORDER BY CAST(name AS BLOB), id`)
	if err != nil {
		return fmt.Errorf("read facts from %s: %w", d.path, mapSQLiteErr(err))
	}
	defer facts.Close()
	logs, err := d.db.Query(`SELECT id, CAST(name AS BLOB), CAST(author AS BLOB),
		CAST(added AS TEXT), CAST(oldvalue AS BLOB) FROM log ORDER BY CAST(name AS BLOB), id`)
	if err != nil {
		return fmt.Errorf("read log from %s: %w", d.path, mapSQLiteErr(err))
	}
	defer logs.Close()

	lr := &logReader{d: d, rows: logs}
	var group []factRow
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		f := d.pick(group)
		group = group[:0]
		var err error
		if f.Log, err = lr.take(f.Name); err != nil {
			return err
		}
		return fn(f.Fact)
	}
	for facts.Next() {
		r, ok, err := d.scanFact(facts)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if len(group) > 0 && group[0].Name != r.Name {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, r)
	}
	if err := facts.Err(); err != nil {
		return fmt.Errorf("read facts from %s: %w", d.path, mapSQLiteErr(err))
	}
	if err := flush(); err != nil {
		return err
	}
	// Whatever is left in log belongs to no factoid.
	return lr.drain()
}

// factRow is a valid facts row and its id.
type factRow struct {
	Fact
	id int64
}

// pick chooses, among valid rows sharing a name (ordered by id), the one the
// plugin would answer from: the first live row, else the first row. The
// others are reported as skipped.
func (d *DB) pick(group []factRow) factRow {
	keep := 0
	for i, r := range group {
		if !r.Forgotten {
			keep = i
			break
		}
	}
	for i, r := range group {
		if i != keep {
			d.skip("facts row %d (%q): duplicate name, row %d kept", r.id, r.Name, group[keep].id)
		}
	}
	return group[keep]
}

// scanFact reads one facts row. ok is false when the row was skipped.
func (d *DB) scanFact(rows *sql.Rows) (r factRow, ok bool, err error) {
	var (
		name, value, author []byte
		added               sql.NullString
		pop                 any
	)
	if err := rows.Scan(&r.id, &name, &value, &author, &added, &pop); err != nil {
		return r, false, fmt.Errorf("read facts from %s: %w", d.path, mapSQLiteErr(err))
	}
	if reason := checkName(name); reason != "" {
		d.skip("facts row %d (%q): %s", r.id, name, reason)
		return r, false, nil
	}
	r.Name = string(name)
	if value == nil {
		d.skip("facts row %d (%q): value is NULL", r.id, r.Name)
		return r, false, nil
	}
	if reason := checkText("value", value); reason != "" {
		d.skip("facts row %d (%q): %s", r.id, r.Name, reason)
		return r, false, nil
	}
	if reason := checkText("author", author); reason != "" {
		d.skip("facts row %d (%q): %s", r.id, r.Name, reason)
		return r, false, nil
	}
	r.Value, r.Author = string(value), string(author)
	if len(r.Value) >= len(deletedMarker) && strings.EqualFold(r.Value[:len(deletedMarker)], deletedMarker) {
		r.Forgotten = true
		r.Value = r.Value[len(deletedMarker):]
	}
	if strings.TrimSpace(r.Value) == "" {
		d.skip("facts row %d (%q): value is empty", r.id, r.Name)
		return r, false, nil
	}
	if r.Popularity, ok = popularity(pop); !ok {
		d.skip("facts row %d (%q): popularity %v is not an integer", r.id, r.Name, pop)
		return r, false, nil
	}
	if r.Added, err = parseAdded(added.String); err != nil {
		return r, false, fmt.Errorf("facts row %d (%q) in %s: %w", r.id, r.Name, d.path, err)
	}
	return r, true, nil
}

// checkName returns why name is unusable, or "".
func checkName(name []byte) string {
	if len(bytes.TrimSpace(name)) == 0 {
		return "name is empty"
	}
	return checkText("name", name)
}

// checkText returns why a text column is unusable, or "".
func checkText(col string, b []byte) string {
	if !utf8.Valid(b) {
		return col + " is not valid UTF-8"
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return col + " contains NUL"
	}
	return ""
}

// popularity converts the popularity column; NULL is 0.
func popularity(v any) (int64, bool) {
	switch p := v.(type) {
	case nil:
		return 0, true
	case int64:
		return p, true
	case float64:
		if p != float64(int64(p)) {
			return 0, false
		}
		return int64(p), true
	case string:
		return popularityText(p)
	case []byte:
		return popularityText(string(p))
	}
	return 0, false
}

func popularityText(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// logReader walks the log table (ordered by name, id) alongside facts.
type logReader struct {
	d       *DB
	rows    *sql.Rows
	pending *logRow // read but not yet consumed
	done    bool
}

type logRow struct {
	id    int64
	name  string
	entry LogEntry
	bad   string // why the row is unusable, "" if usable
}

// next returns the next log row, or nil at the end.
func (lr *logReader) next() (*logRow, error) {
	if lr.pending != nil {
		r := lr.pending
		lr.pending = nil
		return r, nil
	}
	if lr.done {
		return nil, nil
	}
	if !lr.rows.Next() {
		lr.done = true
		if err := lr.rows.Err(); err != nil {
			return nil, fmt.Errorf("read log from %s: %w", lr.d.path, mapSQLiteErr(err))
		}
		return nil, nil
	}
	var (
		r                      logRow
		name, author, oldvalue []byte
		added                  sql.NullString
	)
	if err := lr.rows.Scan(&r.id, &name, &author, &added, &oldvalue); err != nil {
		return nil, fmt.Errorf("read log from %s: %w", lr.d.path, mapSQLiteErr(err))
	}
	r.name = string(name)
	switch {
	case checkName(name) != "":
		r.bad = checkName(name)
	case checkText("author", author) != "":
		r.bad = checkText("author", author)
	case oldvalue == nil:
		r.bad = "oldvalue is NULL"
	case checkText("oldvalue", oldvalue) != "":
		r.bad = checkText("oldvalue", oldvalue)
	}
	if r.bad != "" {
		return &r, nil
	}
	at, err := parseAdded(added.String)
	if err != nil {
		return nil, fmt.Errorf("log row %d (%q) in %s: %w", r.id, r.name, lr.d.path, err)
	}
	r.entry = LogEntry{Author: string(author), At: at, OldValue: string(oldvalue)}
	return &r, nil
}

// take returns the usable log entries of name and reports every unusable
// row up to name, and every usable row sorting before name (an orphan), as
// skipped.
func (lr *logReader) take(name string) ([]LogEntry, error) {
	var out []LogEntry
	for {
		r, err := lr.next()
		if err != nil || r == nil {
			return out, err
		}
		switch {
		case r.name > name:
			lr.pending = r
			return out, nil
		case r.bad != "":
			lr.d.skip("log row %d (%q): %s", r.id, r.name, r.bad)
		case r.name < name:
			lr.d.skip("log row %d (%q): no importable factoid with this name", r.id, r.name)
		default:
			out = append(out, r.entry)
		}
	}
}

// drain reports all remaining log rows as orphans.
func (lr *logReader) drain() error {
	for {
		r, err := lr.next()
		if err != nil || r == nil {
			return err
		}
		if r.bad != "" {
			lr.d.skip("log row %d (%q): %s", r.id, r.name, r.bad)
			continue
		}
		lr.d.skip("log row %d (%q): no importable factoid with this name", r.id, r.name)
	}
}
