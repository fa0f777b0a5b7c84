package kvsync

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
)

// Keyspace names, as used in Record.Keyspace and passed to Subscribe
// callbacks.
const (
	KeyspaceFactoids   = "factoids"    // one record per (lowercased) factoid name
	KeyspaceLog        = "factoid-log" // one record per edit: name NUL hlc node
	KeyspaceChannels   = "channels"    // one record per channel the active node joins
	KeyspaceDemotions  = "demotions"   // one record per demoted node
	KeyspacePopularity = "popularity"  // one counter per (name, node); only that node writes it
	KeyspaceEditors    = "editors"     // local only: never replicated (Subscribe only)
)

// Internal one-byte keyspace ids used in storage keys and on the wire.
const (
	ksFactoids   byte = 'f'
	ksLog        byte = 'l'
	ksChannels   byte = 'c'
	ksDemotions  byte = 'd'
	ksPopularity byte = 'p'
)

// replicatedKeyspaces lists every replicated keyspace id in storage order.
var replicatedKeyspaces = []byte{ksChannels, ksDemotions, ksFactoids, ksLog, ksPopularity}

func keyspaceID(name string) (byte, bool) {
	switch name {
	case KeyspaceFactoids:
		return ksFactoids, true
	case KeyspaceLog:
		return ksLog, true
	case KeyspaceChannels:
		return ksChannels, true
	case KeyspaceDemotions:
		return ksDemotions, true
	case KeyspacePopularity:
		return ksPopularity, true
	}
	return 0, false
}

func keyspaceName(id byte) string {
	switch id {
	case ksFactoids:
		return KeyspaceFactoids
	case ksLog:
		return KeyspaceLog
	case ksChannels:
		return KeyspaceChannels
	case ksDemotions:
		return KeyspaceDemotions
	case ksPopularity:
		return KeyspacePopularity
	}
	return ""
}

// Limits on record fields, checked on every record decoded from the wire or
// from disk.
const (
	maxKeyLen   = 1024
	maxNodeLen  = 255
	maxValueLen = 16 << 10
)

// Record is one replicated key/value pair with its version. Two records for
// the same key are merged by last-writer-wins: see Wins.
type Record struct {
	Keyspace  string    // one of the Keyspace* constants (not KeyspaceEditors)
	Key       string    // unique within the keyspace
	Value     []byte    // opaque payload; empty for tombstones
	TS        Timestamp // HLC time of the write
	Node      string    // writer node name
	Tombstone bool      // true for deletes
}

// Wins reports whether r replaces o when both are versions of the same key.
// Versions are ordered by (TS, Node); the remaining comparisons (tombstone
// first, then value bytes) only break ties between two different writes that
// claim the same (TS, Node), which an honest writer never produces, so that
// every replica still picks the same winner.
func (r Record) Wins(o Record) bool {
	if r.TS != o.TS {
		return r.TS > o.TS
	}
	if r.Node != o.Node {
		return r.Node > o.Node
	}
	if r.Tombstone != o.Tombstone {
		return r.Tombstone
	}
	return bytes.Compare(r.Value, o.Value) > 0
}

// Merge returns the winner of a and b (see Record.Wins).
func Merge(a, b Record) Record {
	if b.Wins(a) {
		return b
	}
	return a
}

// record is the internal form with a one-byte keyspace id.
type record struct {
	ks    byte
	key   string
	value []byte
	ts    Timestamp
	node  string
	tomb  bool
}

func (r record) export() Record {
	return Record{Keyspace: keyspaceName(r.ks), Key: r.key, Value: r.value, TS: r.ts, Node: r.node, Tombstone: r.tomb}
}

func (r record) wins(o record) bool { return r.export().Wins(o.export()) }

func (r record) validate() error {
	if keyspaceName(r.ks) == "" {
		return fmt.Errorf("%w: unknown keyspace id %d", ErrInvalid, r.ks)
	}
	if r.key == "" || len(r.key) > maxKeyLen {
		return fmt.Errorf("%w: record key length %d not in 1..%d", ErrInvalid, len(r.key), maxKeyLen)
	}
	if r.node == "" || len(r.node) > maxNodeLen || !utf8.ValidString(r.node) {
		return fmt.Errorf("%w: record node name %q", ErrInvalid, r.node)
	}
	if len(r.value) > maxValueLen {
		return fmt.Errorf("%w: record value of %d bytes exceeds %d", ErrInvalid, len(r.value), maxValueLen)
	}
	if r.tomb && len(r.value) != 0 {
		return fmt.Errorf("%w: tombstone with a value", ErrInvalid)
	}
	return nil
}

// groupKey is the part of a key that selects its hash-tree bucket: log
// entries and popularity counters of one factoid share the factoid's bucket,
// so they are stored next to each other.
func groupKey(ks byte, key string) string {
	if ks == ksLog || ks == ksPopularity {
		if i := bytes.IndexByte([]byte(key), 0); i >= 0 {
			return key[:i]
		}
	}
	return key
}

// bucketOf returns the hash-tree leaf bucket of a key.
func bucketOf(ks byte, key string) uint32 {
	d := xxhash.New()
	_, _ = d.Write([]byte{ks})
	_, _ = d.WriteString(groupKey(ks, key))
	return uint32(d.Sum64() >> (64 - leafBits))
}

// storageKey is the Badger key of a replicated record:
// 'r' ks bucket(2 bytes, big endian) key.
func storageKey(ks byte, key string) []byte {
	b := make([]byte, 0, 4+len(key))
	b = append(b, prefixRecord, ks)
	b = binary.BigEndian.AppendUint16(b, uint16(bucketOf(ks, key)))
	return append(b, key...)
}

// parseStorageKey splits a Badger key made by storageKey.
func parseStorageKey(k []byte) (ks byte, bucket uint32, key string, ok bool) {
	if len(k) < 5 || k[0] != prefixRecord {
		return 0, 0, "", false
	}
	return k[1], uint32(binary.BigEndian.Uint16(k[2:4])), string(k[4:]), true
}

// Stored value layout (also the body of a record on the wire):
//
//	version(1)=1 ts(8, big endian) flags(1: bit0 tombstone) nodeLen(uvarint) node value...
const valueVersion = 1

func encodeValue(r record) []byte {
	b := make([]byte, 0, 11+len(r.node)+len(r.value))
	return appendValue(b, r)
}

func appendValue(b []byte, r record) []byte {
	b = append(b, valueVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ts))
	var flags byte
	if r.tomb {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(r.node)))
	b = append(b, r.node...)
	return append(b, r.value...)
}

// decodeValue parses a stored value; the returned record shares no memory
// with v.
func decodeValue(ks byte, key string, v []byte) (record, error) {
	if len(v) < 11 || v[0] != valueVersion {
		return record{}, fmt.Errorf("%w: bad stored value for %q", ErrCorrupt, key)
	}
	r := record{ks: ks, key: key, ts: Timestamp(binary.BigEndian.Uint64(v[1:9])), tomb: v[9]&1 != 0}
	if v[9]&^1 != 0 {
		return record{}, fmt.Errorf("%w: bad flags for %q", ErrCorrupt, key)
	}
	n, w := binary.Uvarint(v[10:])
	if w <= 0 || n > uint64(len(v)-10-w) {
		return record{}, fmt.Errorf("%w: bad node length for %q", ErrCorrupt, key)
	}
	off := 10 + w
	r.node = string(v[off : off+int(n)])
	if rest := v[off+int(n):]; len(rest) > 0 {
		r.value = bytes.Clone(rest)
	}
	if err := r.validate(); err != nil {
		return record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return r, nil
}

// hashRecord is the 64-bit content hash of a record that the hash tree XORs
// into its bucket. It covers every replicated field, so two replicas hash a
// key equally iff they hold the same version of it.
func hashRecord(r record) uint64 {
	d := xxhash.New()
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = r.ks
	n := binary.PutUvarint(hdr[1:], uint64(len(r.key)))
	_, _ = d.Write(hdr[:1+n])
	_, _ = d.WriteString(r.key)
	_, _ = d.Write(encodeValue(r))
	return d.Sum64()
}
