package kvsync

import (
	"encoding/binary"
	"fmt"
)

// Wire format (all messages): magic 'K', version 1, type, then the body.
// Integers are uvarints except hashes and timestamps (8 bytes, big
// endian). Every count is checked against the bytes left before anything is
// allocated, so a short or hostile payload is rejected with ErrInvalid.
//
//	records:   count, record...
//	tree-req:  id, level, count, (index, hash)...   the sender's hashes
//	tree-resp: id, level, count, (index, hash)...   the responder's child hashes of differing nodes
//	leaf-req:  id, bcount, (bucket, count, hash...)...  the sender's record hashes per bucket
//	leaf-resp: id, more(1), records, wcount, (bucket, count, hash...)...  records the sender lacks, hashes the responder lacks
//	push-req:  id, records
//	push-resp: id
//
// A record is: keyspace(1) keyLen key valueLen stored-value (see
// appendValue).
const (
	wireMagic   = 'K'
	wireVersion = 1
)

const (
	msgRecords byte = iota + 1
	msgTreeReq
	msgTreeResp
	msgLeafReq
	msgLeafResp
	msgPushReq
	msgPushResp
)

type treeEntry struct {
	idx  uint32
	hash uint64
}

type bucketHashes struct {
	bucket uint32
	hashes []uint64
}

type message struct {
	typ     byte
	id      uint64
	level   uint8
	nodes   []treeEntry
	buckets []bucketHashes // leaf-req: sender's hashes; leaf-resp: wanted hashes
	records []record
	more    bool
}

func (m *message) isResponse() bool {
	return m.typ == msgTreeResp || m.typ == msgLeafResp || m.typ == msgPushResp
}

func encodeMessage(m *message) []byte {
	b := make([]byte, 0, 64)
	b = append(b, wireMagic, wireVersion, m.typ)
	switch m.typ {
	case msgRecords:
		b = appendRecords(b, m.records)
	case msgTreeReq, msgTreeResp:
		b = binary.AppendUvarint(b, m.id)
		b = append(b, m.level)
		b = binary.AppendUvarint(b, uint64(len(m.nodes)))
		for _, e := range m.nodes {
			b = binary.AppendUvarint(b, uint64(e.idx))
			b = binary.BigEndian.AppendUint64(b, e.hash)
		}
	case msgLeafReq:
		b = binary.AppendUvarint(b, m.id)
		b = appendBuckets(b, m.buckets)
	case msgLeafResp:
		b = binary.AppendUvarint(b, m.id)
		if m.more {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = appendRecords(b, m.records)
		b = appendBuckets(b, m.buckets)
	case msgPushReq:
		b = binary.AppendUvarint(b, m.id)
		b = appendRecords(b, m.records)
	case msgPushResp:
		b = binary.AppendUvarint(b, m.id)
	}
	return b
}

func appendRecords(b []byte, rs []record) []byte {
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = appendRecord(b, r)
	}
	return b
}

func appendRecord(b []byte, r record) []byte {
	b = append(b, r.ks)
	b = binary.AppendUvarint(b, uint64(len(r.key)))
	b = append(b, r.key...)
	v := encodeValue(r)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendBuckets(b []byte, bs []bucketHashes) []byte {
	b = binary.AppendUvarint(b, uint64(len(bs)))
	for _, bh := range bs {
		b = binary.AppendUvarint(b, uint64(bh.bucket))
		b = binary.AppendUvarint(b, uint64(len(bh.hashes)))
		for _, h := range bh.hashes {
			b = binary.BigEndian.AppendUint64(b, h)
		}
	}
	return b
}

// reader decodes with bounds checks; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: message: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
}

func (r *reader) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail("truncated %s", what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated %s", what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytesN(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("%s length %d exceeds the %d bytes left", what, n, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// count reads an element count and checks it against the bytes left,
// given the minimum encoded size of one element.
func (r *reader) count(what string, minSize int) int {
	n := r.uvarint(what + " count")
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/minSize) {
		r.fail("%s count %d exceeds the bytes left", what, n)
		return 0
	}
	return int(n)
}

func (r *reader) records() []record {
	n := r.count("record", 14)
	if r.err != nil || n == 0 {
		return nil
	}
	rs := make([]record, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		ks := r.byte1("keyspace")
		kl := r.uvarint("key length")
		key := r.bytesN(kl, "key")
		vl := r.uvarint("value length")
		v := r.bytesN(vl, "value")
		if r.err != nil {
			break
		}
		if keyspaceName(ks) == "" {
			r.fail("unknown keyspace id %d", ks)
			break
		}
		rec, err := decodeValue(ks, string(key), v)
		if err != nil {
			r.fail("record %d: %v", i, err)
			break
		}
		rs = append(rs, rec)
	}
	return rs
}

func (r *reader) buckets() []bucketHashes {
	n := r.count("bucket", 2)
	if r.err != nil || n == 0 {
		return nil
	}
	bs := make([]bucketHashes, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		b := r.uvarint("bucket")
		if b >= numLeaves {
			r.fail("bucket %d out of range", b)
			break
		}
		c := r.count("hash", 8)
		hs := make([]uint64, 0, c)
		for j := 0; j < c; j++ {
			hs = append(hs, r.u64("hash"))
		}
		bs = append(bs, bucketHashes{bucket: uint32(b), hashes: hs})
	}
	return bs
}

// decodeMessage parses and validates a payload. It never panics; any
// malformed input yields an error wrapping ErrInvalid.
func decodeMessage(p []byte) (*message, error) {
	r := &reader{b: p}
	if r.byte1("magic") != wireMagic {
		r.fail("bad magic")
	}
	if v := r.byte1("version"); r.err == nil && v != wireVersion {
		r.fail("unsupported version %d", v)
	}
	m := &message{typ: r.byte1("type")}
	if r.err != nil {
		return nil, r.err
	}
	switch m.typ {
	case msgRecords:
		m.records = r.records()
	case msgTreeReq, msgTreeResp:
		m.id = r.uvarint("id")
		m.level = r.byte1("level")
		if r.err == nil && (m.level < 1 || m.level > treeDepth) {
			r.fail("tree level %d out of range", m.level)
		}
		n := r.count("tree node", 9)
		if r.err == nil && n > 0 {
			m.nodes = make([]treeEntry, 0, n)
			for i := 0; i < n && r.err == nil; i++ {
				idx := r.uvarint("node index")
				h := r.u64("node hash")
				if r.err == nil && idx >= 1<<(fanoutBits*uint(m.level)) {
					r.fail("node index %d out of range for level %d", idx, m.level)
				}
				m.nodes = append(m.nodes, treeEntry{idx: uint32(idx), hash: h})
			}
		}
	case msgLeafReq:
		m.id = r.uvarint("id")
		m.buckets = r.buckets()
	case msgLeafResp:
		m.id = r.uvarint("id")
		switch r.byte1("more") {
		case 0:
		case 1:
			m.more = true
		default:
			r.fail("bad more flag")
		}
		m.records = r.records()
		m.buckets = r.buckets()
	case msgPushReq:
		m.id = r.uvarint("id")
		m.records = r.records()
	case msgPushResp:
		m.id = r.uvarint("id")
	default:
		r.fail("unknown message type %d", m.typ)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}
