package encyclopedia

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// schema is the DDL of the Encyclopedia plugin's database (facts and log
// tables), as WriteFixture creates it.
const schema = `CREATE TABLE facts (
	id INTEGER PRIMARY KEY,
	author VARCHAR(100) NOT NULL,
	name VARCHAR(20) NOT NULL,
	added DATETIME,
	value VARCHAR(200) NOT NULL,
	popularity INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE log (
	id INTEGER PRIMARY KEY,
	author VARCHAR(100) NOT NULL,
	name VARCHAR(20) NOT NULL,
	added DATETIME,
	oldvalue VARCHAR(200) NOT NULL
);`

// WriteFixture creates a new Encyclopedia database at path holding facts,
// for tests and demos. It refuses to overwrite an existing file. Facts are
// written as given, without validation, in slice order (so row ids follow
// it): a Forgotten fact's value gets the "<deleted>" marker, each Log entry
// becomes a log row for the fact's name, and times are stored in the later
// plugin's format ("2009-05-01 12:34:56.789012+00:00", microsecond
// precision, UTC); a zero time is stored as NULL.
func WriteFixture(path string, facts []Fact) (err error) {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("write encyclopedia fixture %s: %w", path, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write encyclopedia fixture: %w", err)
	}
	dsn, err := fileURI(path, "rwc")
	if err != nil {
		return fmt.Errorf("write encyclopedia fixture %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("write encyclopedia fixture %s: %w", path, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write encyclopedia fixture %s: %w", path, cerr)
		}
	}()
	if err := writeFacts(db, facts); err != nil {
		return fmt.Errorf("write encyclopedia fixture %s: %w", path, err)
	}
	return nil
}

func writeFacts(db *sql.DB, facts []Fact) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	if _, err := tx.Exec(schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	insFact, err := tx.Prepare("INSERT INTO facts (name, value, author, added, popularity) VALUES (?, ?, ?, ?, ?)")
	if err != nil {
		return err
	}
	defer insFact.Close()
	insLog, err := tx.Prepare("INSERT INTO log (author, name, added, oldvalue) VALUES (?, ?, ?, ?)")
	if err != nil {
		return err
	}
	defer insLog.Close()
	for _, f := range facts {
		value := f.Value
		if f.Forgotten {
			value = deletedMarker + value
		}
		if _, err := insFact.Exec(f.Name, value, f.Author, nullTime(f.Added), f.Popularity); err != nil {
			return fmt.Errorf("insert fact %q: %w", f.Name, err)
		}
		for _, l := range f.Log {
			if _, err := insLog.Exec(l.Author, f.Name, nullTime(l.At), l.OldValue); err != nil {
				return fmt.Errorf("insert log of %q: %w", f.Name, err)
			}
		}
	}
	return tx.Commit()
}

// nullTime is the added column for t: NULL for the zero time.
func nullTime(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: formatAdded(t), Valid: true}
}
