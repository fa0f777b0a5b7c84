package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Health is what a node says about its own ability to serve.
type Health string

// Health values. Only HealthOK makes a node a candidate for the active role.
const (
	HealthOK       Health = "ok"
	HealthStarting Health = "starting"
	HealthDBError  Health = "db-error"
	HealthIRCDown  Health = "irc-down"
	HealthLagged   Health = "lagged"
	HealthLeaving  Health = "leaving"
)

// Status is the membership state of a member as seen by this node.
type Status string

// Status values. memberlist v0.7.0 does not expose its suspect state to
// delegates, so StatusSuspect is defined for completeness but members are
// reported alive until they are declared dead.
const (
	StatusAlive   Status = "alive"
	StatusSuspect Status = "suspect"
	StatusDead    Status = "dead"
	StatusLeft    Status = "left"
)

// Role is a member's role in the current decision.
type Role string

// Role values.
const (
	RoleActive    Role = "active"
	RoleStandby   Role = "standby"
	RoleUnhealthy Role = "unhealthy"
)

// Meta is what a node publishes about itself in gossip. It is encoded into
// at most memberlist.MetaMaxSize (512) bytes; strings longer than their
// field limit are truncated (at a UTF-8 boundary) rather than rejected.
type Meta struct {
	Rank         int
	Health       Health
	HealthySince time.Time // set by the node itself when Health became ok (ms precision)
	IRCConnected bool
	IRCServer    string
	Nick         string
	LagMS        int64
	Version      string
	Entries      int64
	Digest       string
}

// Field limits of the meta encoding, in bytes.
const (
	maxHealthLen  = 32
	maxServerLen  = 96
	maxNickLen    = 64
	maxVersionLen = 64
	maxDigestLen  = 128
	metaVersion   = 1
	// metaMaxSize mirrors memberlist.MetaMaxSize.
	metaMaxSize = 512
)

// errBadMeta is returned by decodeMeta for malformed input.
var errBadMeta = errors.New("malformed meta")

// truncUTF8 cuts s to at most n bytes without splitting a rune.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

func appendString(b []byte, s string, limit int) []byte {
	s = truncUTF8(s, limit)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeMeta encodes m compactly. The result is always <= metaMaxSize.
//
// Layout: version byte, rank (varint), health (string), healthy-since unix ms
// (varint, 0 = zero time), flags byte (bit 0 irc connected), irc server,
// nick (strings), lag ms (varint), version (string), entries (varint),
// digest (string). Strings are uvarint length + bytes.
func encodeMeta(m Meta) []byte {
	b := make([]byte, 0, 128)
	b = append(b, metaVersion)
	b = binary.AppendVarint(b, int64(m.Rank))
	b = appendString(b, string(m.Health), maxHealthLen)
	var since int64
	if !m.HealthySince.IsZero() {
		since = m.HealthySince.UnixMilli()
	}
	b = binary.AppendVarint(b, since)
	var flags byte
	if m.IRCConnected {
		flags |= 1
	}
	b = append(b, flags)
	b = appendString(b, m.IRCServer, maxServerLen)
	b = appendString(b, m.Nick, maxNickLen)
	b = binary.AppendVarint(b, m.LagMS)
	b = appendString(b, m.Version, maxVersionLen)
	b = binary.AppendVarint(b, m.Entries)
	b = appendString(b, m.Digest, maxDigestLen)
	return b
}

type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad %s", errBadMeta, what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) str(what string, limit int) string {
	if r.err != nil {
		return ""
	}
	l, n := binary.Uvarint(r.b)
	if n <= 0 || l > uint64(limit) || l > uint64(len(r.b)-n) {
		r.err = fmt.Errorf("%w: bad %s", errBadMeta, what)
		return ""
	}
	s := string(r.b[n : n+int(l)])
	r.b = r.b[n+int(l):]
	return s
}

func (r *metaReader) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = fmt.Errorf("%w: missing %s", errBadMeta, what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// decodeMeta parses the output of encodeMeta. Trailing bytes are allowed
// (newer versions may append fields).
func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > metaMaxSize {
		return m, fmt.Errorf("%w: %d bytes", errBadMeta, len(b))
	}
	r := &metaReader{b: b}
	if v := r.byte1("version"); r.err == nil && v != metaVersion {
		return m, fmt.Errorf("%w: unknown version %d", errBadMeta, v)
	}
	rank := r.varint("rank")
	if rank < -1<<31 || rank > 1<<31-1 {
		return m, fmt.Errorf("%w: rank %d out of range", errBadMeta, rank)
	}
	m.Rank = int(rank)
	m.Health = Health(r.str("health", maxHealthLen))
	if since := r.varint("healthy-since"); since != 0 {
		m.HealthySince = time.UnixMilli(since)
	}
	m.IRCConnected = r.byte1("flags")&1 != 0
	m.IRCServer = r.str("irc server", maxServerLen)
	m.Nick = r.str("nick", maxNickLen)
	m.LagMS = r.varint("lag")
	m.Version = r.str("version", maxVersionLen)
	m.Entries = r.varint("entries")
	m.Digest = r.str("digest", maxDigestLen)
	if r.err != nil {
		return Meta{}, r.err
	}
	return m, nil
}
