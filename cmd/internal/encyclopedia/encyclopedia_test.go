package encyclopedia

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rawDB creates an SQLite database at path and runs stmts on it; each stmt
// is a query followed by its arguments.
func rawDB(t testing.TB, path string, stmts ...[]any) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s[0].(string), s[1:]...); err != nil {
			t.Fatalf("%s: %v", s[0], err)
		}
	}
}

func stmt(q string, args ...any) []any { return append([]any{q}, args...) }

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// collect runs Each and returns the facts.
func collect(t *testing.T, d *DB) []Fact {
	t.Helper()
	var out []Fact
	if err := d.Each(func(f Fact) error {
		out = append(out, f)
		return nil
	}); err != nil {
		t.Fatalf("Each: %v", err)
	}
	return out
}

func openT(t *testing.T, path string) *DB {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// ubotuFixture mirrors what the plugin itself writes: naive local-time
// stamps from old versions, +00:00 stamps from later ones, aliases,
// replies, forgotten facts, channel variants and -also entries.
func ubotuFixture(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "ubuntu.db")
	ins := "INSERT INTO facts (id, name, value, author, added, popularity) VALUES (?, ?, ?, ?, ?, ?)"
	logIns := "INSERT INTO log (id, name, author, added, oldvalue) VALUES (?, ?, ?, ?, ?)"
	rawDB(t, path,
		// Early databases allowed a NULL popularity.
		stmt(strings.Replace(schema, "popularity INTEGER NOT NULL", "popularity INTEGER", 1)),
		stmt(ins, 1, "ubuntu", "a Linux distribution", "dk!~dk@ubuntu/member/dk", "2006-11-02 21:10:33.253631", 120),
		stmt(ins, 2, "distro", "<alias> ubuntu", "dk!~dk@ubuntu/member/dk", "2006-11-02 21:11:00", 3),
		stmt(ins, 3, "hi", "<reply> Hello $who!", "ops!~o@host", "2009-05-01 12:34:56.789012+00:00", 0),
		stmt(ins, 4, "ubuntu-#kubuntu", "<reply> see kubuntu", "ops!~o@host", "2009-05-01 12:35:00+00:00", 7),
		stmt(ins, 5, "ubuntu-also", "Also see https://ubuntu.com", "ops!~o@host", "2009-05-01 12:36:00+00:00", 1),
		stmt(ins, 6, "oldthing", "<deleted>something obsolete", "x!~x@host", "2007-01-01 00:00:00", nil),
		stmt(ins, 7, "shouty", "<DELETED>upper-case marker", "x!~x@host", "2007-01-01T00:00:00Z", "5"),
		stmt(logIns, 1, "ubuntu", "mdz!~m@host", "2007-02-03 04:05:06.000007", "a distro"),
		stmt(logIns, 2, "oldthing", "x!~x@host", "2008-01-01 00:00:00", "something obsolete"),
		stmt(logIns, 3, "ubuntu", "sabdfl!~s@host", "2008-02-03 04:05:06+00:00", "a Linux distro"),
	)
	return path
}

func TestEachFixture(t *testing.T) {
	d := openT(t, ubotuFixture(t))
	got := collect(t, d)
	want := []Fact{
		{Name: "distro", Value: "<alias> ubuntu", Author: "dk!~dk@ubuntu/member/dk", Added: ts("2006-11-02T21:11:00Z"), Popularity: 3},
		{Name: "hi", Value: "<reply> Hello $who!", Author: "ops!~o@host", Added: ts("2009-05-01T12:34:56.789012Z")},
		{Name: "oldthing", Value: "something obsolete", Author: "x!~x@host", Added: ts("2007-01-01T00:00:00Z"), Forgotten: true,
			Log: []LogEntry{{Author: "x!~x@host", At: ts("2008-01-01T00:00:00Z"), OldValue: "something obsolete"}}},
		{Name: "shouty", Value: "upper-case marker", Author: "x!~x@host", Added: ts("2007-01-01T00:00:00Z"), Popularity: 5, Forgotten: true},
		{Name: "ubuntu", Value: "a Linux distribution", Author: "dk!~dk@ubuntu/member/dk", Added: ts("2006-11-02T21:10:33.253631Z"), Popularity: 120,
			Log: []LogEntry{
				{Author: "mdz!~m@host", At: ts("2007-02-03T04:05:06.000007Z"), OldValue: "a distro"},
				{Author: "sabdfl!~s@host", At: ts("2008-02-03T04:05:06Z"), OldValue: "a Linux distro"},
			}},
		{Name: "ubuntu-#kubuntu", Value: "<reply> see kubuntu", Author: "ops!~o@host", Added: ts("2009-05-01T12:35:00Z"), Popularity: 7},
		{Name: "ubuntu-also", Value: "Also see https://ubuntu.com", Author: "ops!~o@host", Added: ts("2009-05-01T12:36:00Z"), Popularity: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Each:\n got %+v\nwant %+v", got, want)
	}
	if s := d.Skipped(); len(s) != 0 {
		t.Errorf("Skipped = %q, want none", s)
	}
	n, err := d.Count()
	if err != nil || n != 7 {
		t.Errorf("Count = %d, %v; want 7", n, err)
	}
	// A second pass gives the same result.
	if again := collect(t, d); !reflect.DeepEqual(again, want) {
		t.Errorf("second Each differs: %+v", again)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	otherTables := filepath.Join(dir, "other.db")
	rawDB(t, otherTables, stmt("CREATE TABLE factoids (key TEXT, value TEXT)"))
	noPopularity := filepath.Join(dir, "nopop.db")
	rawDB(t, noPopularity,
		stmt("CREATE TABLE facts (id INTEGER PRIMARY KEY, author, name, added, value)"),
		stmt("CREATE TABLE log (id INTEGER PRIMARY KEY, author, name, added, oldvalue)"))
	noLog := filepath.Join(dir, "nolog.db")
	rawDB(t, noLog, stmt(strings.SplitAfter(schema, ";")[0]))
	corrupt := write("corrupt.db", append([]byte(sqliteMagic), bytes.Repeat([]byte{0xff}, 4096)...))

	tests := []struct {
		name    string
		path    string
		is      error  // errors.Is target
		mention string // substring of the message
	}{
		{"missing", filepath.Join(dir, "missing.db"), fs.ErrNotExist, "missing.db"},
		{"directory", dir, ErrNotEncyclopedia, "not a regular file"},
		{"empty file", write("empty.db", nil), ErrNotEncyclopedia, "too short"},
		{"text file", write("text.db", []byte("this is not a database, it is a long enough text file\n")), ErrNotEncyclopedia, "bad header"},
		{"corrupt sqlite", corrupt, ErrNotEncyclopedia, "corrupt.db"},
		{"other tables", otherTables, ErrNotEncyclopedia, "no table facts; no table log"},
		{"missing column", noPopularity, ErrNotEncyclopedia, "table facts lacks column(s) popularity"},
		{"missing log table", noLog, ErrNotEncyclopedia, "no table log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(tt.path)
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created the missing file: %v", err)
	}
}

func TestOpenIsReadOnly(t *testing.T) {
	path := ubotuFixture(t)
	dir := filepath.Dir(path)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := openT(t, path)
	collect(t, d)
	if _, err := d.db.Exec("UPDATE facts SET popularity = 0"); err == nil {
		t.Error("write through the read-only handle succeeded")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("database file changed")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after reading, want only the database", len(entries))
	}
}

func TestOpenAwkwardPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%chars")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ubuntu.db")
	if err := WriteFixture(path, []Fact{{Name: "x", Value: "y"}}); err != nil {
		t.Fatal(err)
	}
	d := openT(t, path)
	if got := collect(t, d); len(got) != 1 || got[0].Name != "x" {
		t.Errorf("Each = %+v", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries in %s, want 1", len(entries), dir)
	}
}

func TestEachSkipsInvalidRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.db")
	ins := "INSERT INTO facts (id, name, value, author, added, popularity) VALUES (?, CAST(? AS TEXT), CAST(? AS TEXT), ?, ?, ?)"
	logIns := "INSERT INTO log (id, name, author, added, oldvalue) VALUES (?, CAST(? AS TEXT), ?, ?, CAST(? AS TEXT))"
	rawDB(t, path,
		stmt(strings.ReplaceAll(schema, "NOT NULL", "")),
		stmt(ins, 1, []byte("good"), []byte("fine"), "a", "2007-01-01 00:00:00", 1),
		stmt(ins, 2, []byte("bad\xffutf8"), []byte("v"), "a", "2007-01-01", 0),
		stmt(ins, 3, []byte("nul\x00name"), []byte("v"), "a", "2007-01-01", 0),
		stmt(ins, 4, []byte(""), []byte("v"), "a", "2007-01-01", 0),
		stmt(ins, 5, []byte("  "), []byte("v"), "a", "2007-01-01", 0),
		stmt(ins, 6, nil, []byte("v"), "a", "2007-01-01", 0),
		stmt(ins, 7, []byte("nulvalue"), []byte("a\x00b"), "a", "2007-01-01", 0),
		stmt(ins, 8, []byte("badvalue"), []byte("\xc3\x28"), "a", "2007-01-01", 0),
		stmt(ins, 9, []byte("nullvalue"), nil, "a", "2007-01-01", 0),
		stmt(ins, 10, []byte("emptyvalue"), []byte("<deleted>"), "a", "2007-01-01", 0),
		stmt(ins, 11, []byte("pop"), []byte("v"), "a", "2007-01-01", "lots"),
		stmt(ins, 12, []byte("dup"), []byte("<deleted>old"), "a", "2007-01-01", 0),
		stmt(ins, 13, []byte("dup"), []byte("live"), "b", "2007-01-02", 0),
		stmt(ins, 14, []byte("dup"), []byte("later"), "c", "2007-01-03", 0),
		stmt(ins, 15, []byte("badauthor"), []byte("v"), []byte("\xff"), "2007-01-01", 0),
		stmt(logIns, 1, []byte("good"), "a", "2007-01-02", []byte("older")),
		stmt(logIns, 2, []byte("good"), "a", "2007-01-03", []byte("bad\xff")),
		stmt(logIns, 3, []byte("gone"), "a", "2007-01-03", []byte("orphan")),
		stmt(logIns, 4, []byte("zzz"), "a", "2007-01-03", []byte("orphan at end")),
		stmt(logIns, 5, nil, "a", "2007-01-03", []byte("no name")),
		stmt(logIns, 6, []byte("dup"), "a", "2007-01-03", []byte("dup's log")),
		stmt(logIns, 7, []byte("good"), "a", "2007-01-04", nil),
	)
	d := openT(t, path)
	got := collect(t, d)
	var names []string
	for _, f := range got {
		names = append(names, f.Name)
	}
	if want := []string{"dup", "good"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("names = %q, want %q", names, want)
	}
	if got[0].Value != "live" || got[0].Author != "b" || len(got[0].Log) != 1 {
		t.Errorf("dup = %+v, want the live row 13 with its log", got[0])
	}
	if len(got[1].Log) != 1 || got[1].Log[0].OldValue != "older" {
		t.Errorf("good's log = %+v, want only the valid entry", got[1].Log)
	}
	wantSkipped := []string{
		`facts row 6 (""): name is empty`,
		`facts row 4 (""): name is empty`,
		`facts row 5 ("  "): name is empty`,
		`facts row 15 ("badauthor"): author is not valid UTF-8`,
		`facts row 8 ("badvalue"): value is not valid UTF-8`,
		`facts row 12 ("dup"): duplicate name, row 13 kept`,
		`facts row 14 ("dup"): duplicate name, row 13 kept`,
		`log row 5 (""): name is empty`,
		`facts row 10 ("emptyvalue"): value is empty`,
		`log row 3 ("gone"): no importable factoid with this name`,
		`log row 2 ("good"): oldvalue is not valid UTF-8`,
		`log row 7 ("good"): oldvalue is NULL`,
		`facts row 3 ("nul\x00name"): name contains NUL`,
		`facts row 9 ("nullvalue"): value is NULL`,
		`facts row 7 ("nulvalue"): value contains NUL`,
		`facts row 11 ("pop"): popularity lots is not an integer`,
		`facts row 2 ("bad\xffutf8"): name is not valid UTF-8`,
		`log row 4 ("zzz"): no importable factoid with this name`,
	}
	// The order interleaves the two tables by name; compare as sets of lines
	// plus the facts-table order, which is fixed by ORDER BY name, id.
	gotSkipped := d.Skipped()
	if !sameSet(gotSkipped, wantSkipped) {
		t.Errorf("Skipped:\n got %q\nwant %q", gotSkipped, wantSkipped)
	}
	n, err := d.Count()
	if err != nil || n != 15 {
		t.Errorf("Count = %d, %v; want 15 (all rows)", n, err)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestEachBadTimestamp(t *testing.T) {
	tests := []struct {
		name    string
		stmts   [][]any
		mention string
	}{
		{"facts", [][]any{
			stmt("INSERT INTO facts (id, name, value, author, added) VALUES (41, 'a', 'v', 'x', 'yesterday')"),
		}, `facts row 41 ("a")`},
		{"log", [][]any{
			stmt("INSERT INTO facts (id, name, value, author, added) VALUES (1, 'a', 'v', 'x', '2007-01-01')"),
			stmt("INSERT INTO log (id, name, author, added, oldvalue) VALUES (42, 'a', 'x', '2007-13-45 99:00:00', 'o')"),
		}, `log row 42 ("a")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ts.db")
			rawDB(t, path, append([][]any{stmt(schema)}, tt.stmts...)...)
			d := openT(t, path)
			err := d.Each(func(Fact) error { return nil })
			if !errors.Is(err, errBadTimestamp) {
				t.Fatalf("Each error = %v, want a bad timestamp", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not name %s", err, tt.mention)
			}
		})
	}
}

func TestEachStopsOnCallbackError(t *testing.T) {
	d := openT(t, ubotuFixture(t))
	stop := errors.New("stop")
	calls := 0
	err := d.Each(func(f Fact) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Errorf("Each = %v, want the callback's error unchanged", err)
	}
	if calls != 2 {
		t.Errorf("callback ran %d times after the error, want 2", calls)
	}
}

func TestParseAdded(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC; "" = zero; "error" = rejected
	}{
		{"", ""},
		{"   ", ""},
		{"2006-11-02 21:10:33.253631", "2006-11-02T21:10:33.253631Z"},
		{"2006-11-02 21:10:33", "2006-11-02T21:10:33Z"},
		{"2009-05-01 12:34:56.789012+00:00", "2009-05-01T12:34:56.789012Z"},
		{"2009-05-01 12:34:56+02:00", "2009-05-01T10:34:56Z"},
		{"2009-05-01 12:34:56+0200", "2009-05-01T10:34:56Z"},
		{"2009-05-01 12:34:56 -0500", "2009-05-01T17:34:56Z"},
		{"2009-05-01T12:34:56Z", "2009-05-01T12:34:56Z"},
		{"2009-05-01T12:34:56.5", "2009-05-01T12:34:56.5Z"},
		{"2009-05-01 12:34:56 UTC", "2009-05-01T12:34:56Z"},
		{"2009-05-01 12:34", "2009-05-01T12:34:00Z"},
		{"2009-05-01", "2009-05-01T00:00:00Z"},
		{"1241181296", "2009-05-01T12:34:56Z"},
		{"1241181296.25", "2009-05-01T12:34:56.25Z"},
		{"yesterday", "error"},
		{"2009-13-01 00:00:00", "error"},
		{"2009-05-01 25:00:00", "error"},
		{"12.34.56", "error"},
		{".5", "error"},
		{"9999999999999999", "error"},
		{"2009-05-01 12:34:56 trailing", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseAdded(tt.in)
			switch {
			case tt.want == "error":
				if !errors.Is(err, errBadTimestamp) {
					t.Errorf("parseAdded(%q) = %v, %v; want error", tt.in, got, err)
				}
			case err != nil:
				t.Errorf("parseAdded(%q): %v", tt.in, err)
			case tt.want == "":
				if !got.IsZero() {
					t.Errorf("parseAdded(%q) = %v, want zero", tt.in, got)
				}
			default:
				if !got.Equal(ts(tt.want)) || got.Location() != time.UTC {
					t.Errorf("parseAdded(%q) = %v, want %s", tt.in, got, tt.want)
				}
			}
		})
	}
}

// FuzzParseAdded checks that parseAdded never panics, that what it accepts
// is in UTC, and that what formatAdded writes parses back to the same time.
func FuzzParseAdded(f *testing.F) {
	for _, s := range []string{"", "2006-11-02 21:10:33.253631", "2009-05-01 12:34:56.789012+00:00",
		"2009-05-01T12:34:56Z", "2009-05-01", "1241181296.25", "yesterday", "2009-05-01 12:34:56 UTC"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseAdded(s)
		if err != nil {
			return
		}
		if got.IsZero() {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("parseAdded(%q) location %v", s, got.Location())
		}
		if got.Year() < 0 || got.Year() > 9999 {
			return // formatAdded writes four-digit years only
		}
		back, err := parseAdded(formatAdded(got))
		if err != nil || !back.Equal(got.Truncate(time.Microsecond)) {
			t.Fatalf("round trip of %q: %v via %q = %v, %v", s, got, formatAdded(got), back, err)
		}
	})
}

func TestFormatAdded(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{ts("2009-05-01T12:34:56Z"), "2009-05-01 12:34:56+00:00"},
		{ts("2009-05-01T12:34:56.789012345Z"), "2009-05-01 12:34:56.789012+00:00"},
		{ts("2009-05-01T14:34:56.5+02:00"), "2009-05-01 12:34:56.500000+00:00"},
	}
	for _, tt := range tests {
		if got := formatAdded(tt.in); got != tt.want {
			t.Errorf("formatAdded(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFactAliasReply(t *testing.T) {
	tests := []struct {
		value   string
		alias   string
		isAlias bool
		reply   string
		isReply bool
	}{
		{"<alias> Ubuntu ", "ubuntu", true, "", false},
		{"<ALIAS>kubuntu", "kubuntu", true, "", false},
		{"<alias>", "", true, "", false},
		{"<reply> Hello $who ", "", false, "Hello $who", true},
		{"<REPLY> shouted", "", false, "", false}, // the plugin's <reply> check is case-sensitive
		{"a plain value", "", false, "", false},
		{"<alia", "", false, "", false},
	}
	for _, tt := range tests {
		f := Fact{Name: "x", Value: tt.value}
		a, ok := f.Alias()
		if a != tt.alias || ok != tt.isAlias {
			t.Errorf("Alias(%q) = %q, %v; want %q, %v", tt.value, a, ok, tt.alias, tt.isAlias)
		}
		r, ok := f.Reply()
		if r != tt.reply || ok != tt.isReply {
			t.Errorf("Reply(%q) = %q, %v; want %q, %v", tt.value, r, ok, tt.reply, tt.isReply)
		}
	}
}

func TestWriteFixtureRoundTrip(t *testing.T) {
	facts := []Fact{
		{Name: "zeta", Value: "last by name", Author: "a!b@c", Added: ts("2010-01-02T03:04:05.123456789+01:00"), Popularity: 9,
			Log: []LogEntry{
				{Author: "e1", At: ts("2011-01-01T00:00:00Z"), OldValue: "first"},
				{Author: "e2", At: ts("2012-01-01T00:00:00.5Z"), OldValue: "second"},
			}},
		{Name: "alpha", Value: "<alias> zeta", Author: "a!b@c", Added: ts("2010-01-02T03:04:05Z")},
		{Name: "gone", Value: "was here", Forgotten: true, Log: []LogEntry{{Author: "e3", OldValue: "was here"}}},
		{Name: "alpha-#ubuntu", Value: "<reply> chan variant ünïcode", Popularity: -1},
	}
	path := filepath.Join(t.TempDir(), "fx.db")
	if err := WriteFixture(path, facts); err != nil {
		t.Fatal(err)
	}
	if err := WriteFixture(path, nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteFixture over an existing file = %v, want fs.ErrExist", err)
	}
	d := openT(t, path)
	got := collect(t, d)
	want := []Fact{facts[1], facts[3], facts[2], facts[0]}
	want[3].Added = ts("2010-01-02T02:04:05.123456Z")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if s := d.Skipped(); len(s) != 0 {
		t.Errorf("Skipped = %q", s)
	}
}

func BenchmarkEach(b *testing.B) {
	const n = 10000
	facts := make([]Fact, n)
	base := ts("2008-01-01T00:00:00Z")
	for i := range facts {
		facts[i] = Fact{
			Name:       fmt.Sprintf("factoid-%05d", i),
			Value:      strings.Repeat("v", 150),
			Author:     "someone!~user@ubuntu/member/someone",
			Added:      base.Add(time.Duration(i) * time.Minute),
			Popularity: int64(i),
			Log: []LogEntry{
				{Author: "editor!~e@host", At: base.Add(time.Duration(i) * time.Hour), OldValue: "old value one"},
				{Author: "editor!~e@host", At: base.Add(time.Duration(i+1) * time.Hour), OldValue: "old value two"},
			},
		}
	}
	path := filepath.Join(b.TempDir(), "bench.db")
	if err := WriteFixture(path, facts); err != nil {
		b.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ResetTimer()
	for b.Loop() {
		count := 0
		if err := d.Each(func(Fact) error { count++; return nil }); err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("got %d facts", count)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "facts/s")
}
