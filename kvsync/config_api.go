package kvsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Channels returns the replicated channel list, sorted.
func (s *Store) Channels() ([]string, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	var out []string
	err := s.view("list channels", func(txn *badger.Txn) error {
		return scanPrefix(txn, keyspacePrefix(ksChannels), func(r record, _ uint64) bool {
			if !r.tomb {
				out = append(out, string(r.value))
			}
			return true
		})
	})
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return out, err
}

// AddChannel adds a channel (case-insensitive; the spelling given is kept).
// Names start with # or &, have no spaces, commas or control characters and
// are at most MaxChannelBytes long. Adding a present channel does nothing.
func (s *Store) AddChannel(name string) error {
	if err := validateChannel(name); err != nil {
		return err
	}
	if err := s.open(); err != nil {
		return err
	}
	key := strings.ToLower(name)
	_, err := s.update("add channel", true, func(w *writeTxn) error {
		cur, had, err := w.get(ksChannels, key)
		if err != nil {
			return err
		}
		if had && !cur.tomb && string(cur.value) == name {
			return nil
		}
		_, err = w.put(s.newRecord(ksChannels, key, []byte(name)))
		return err
	})
	return err
}

// RemoveChannel removes a channel; ErrNotFound if it is not in the list.
func (s *Store) RemoveChannel(name string) error {
	if err := validateChannel(name); err != nil {
		return err
	}
	if err := s.open(); err != nil {
		return err
	}
	key := strings.ToLower(name)
	_, err := s.update("remove channel", true, func(w *writeTxn) error {
		cur, had, err := w.get(ksChannels, key)
		if err != nil {
			return err
		}
		if !had || cur.tomb {
			return fmt.Errorf("channel %q: %w", name, ErrNotFound)
		}
		r := s.newRecord(ksChannels, key, nil)
		r.tomb = true
		_, err = w.put(r)
		return err
	})
	return err
}

// Demotions returns the replicated demotions, oldest failure first.
func (s *Store) Demotions() ([]Demotion, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	var out []Demotion
	err := s.view("list demotions", func(txn *badger.Txn) error {
		var derr error
		err := scanPrefix(txn, keyspacePrefix(ksDemotions), func(r record, _ uint64) bool {
			if r.tomb {
				return true
			}
			at, err := decodeDemotion(r.value)
			if err != nil {
				derr = fmt.Errorf("%w: demotion of %q: %w", ErrCorrupt, r.key, err)
				return false
			}
			out = append(out, Demotion{Node: r.key, At: at})
			return true
		})
		return errors.Join(err, derr)
	})
	slices.SortFunc(out, func(a, b Demotion) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	return out, err
}

// Demote records that node failed at at (replacing an earlier demotion of
// the same node).
func (s *Store) Demote(node string, at time.Time) error {
	if err := validateText("node name", node, maxNodeLen, false); err != nil {
		return err
	}
	if at.IsZero() {
		return invalid("demotion time is zero")
	}
	if err := s.open(); err != nil {
		return err
	}
	_, err := s.update("demote", true, func(w *writeTxn) error {
		_, err := w.put(s.newRecord(ksDemotions, node, binary.AppendVarint(nil, at.UnixNano())))
		return err
	})
	return err
}

// ClearDemotions removes every demotion (restores the static order).
func (s *Store) ClearDemotions() error {
	if err := s.open(); err != nil {
		return err
	}
	_, err := s.update("clear demotions", true, func(w *writeTxn) error {
		var keys []string
		if err := scanPrefix(w.txn, keyspacePrefix(ksDemotions), func(r record, _ uint64) bool {
			if !r.tomb {
				keys = append(keys, r.key)
			}
			return true
		}); err != nil {
			return err
		}
		for _, k := range keys {
			r := s.newRecord(ksDemotions, k, nil)
			r.tomb = true
			if _, err := w.put(r); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// --- local-only editors ---

func editorKey(mask string) []byte { return append([]byte{prefixEditor}, mask...) }

// Editors returns the local editor masks, sorted. They are never
// replicated and never part of the digest.
func (s *Store) Editors() ([]string, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	var out []string
	err := s.view("list editors", func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixEditor}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, string(it.Item().Key()[1:]))
		}
		return nil
	})
	return out, err
}

// AddEditor adds a local editor mask (hostmask or account:NAME; no spaces
// or control characters, at most MaxMaskBytes).
func (s *Store) AddEditor(mask string) error {
	if err := validateText("editor mask", mask, MaxMaskBytes, false); err != nil {
		return err
	}
	if strings.ContainsRune(mask, ' ') {
		return invalid("editor mask %q contains a space", mask)
	}
	return s.localUpdate("add editor", func(txn *badger.Txn) error {
		return txn.Set(editorKey(mask), nil)
	})
}

// RemoveEditor removes a local editor mask; ErrNotFound if absent.
func (s *Store) RemoveEditor(mask string) error {
	if err := validateText("editor mask", mask, MaxMaskBytes, false); err != nil {
		return err
	}
	return s.localUpdate("remove editor", func(txn *badger.Txn) error {
		if _, err := txn.Get(editorKey(mask)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("editor %q: %w", mask, ErrNotFound)
		} else if err != nil {
			return err
		}
		return txn.Delete(editorKey(mask))
	})
}

func (s *Store) localUpdate(op string, fn func(txn *badger.Txn) error) error {
	if err := s.open(); err != nil {
		return err
	}
	err := s.withDB(func(db *badger.DB) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: badger panicked: %v", ErrCorrupt, r)
			}
		}()
		s.mu.Lock()
		defer s.mu.Unlock()
		return db.Update(fn)
	})
	if err != nil {
		return s.dbErr(op, err)
	}
	s.markDirtyName(KeyspaceEditors)
	return nil
}
