package kvsync

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// The hash tree over the replicated keyspace has a fixed shape: fanout 16
// and 4 levels below the root, so 65536 leaf buckets. A key's bucket is the
// top 16 bits of the hash of its (keyspace, group key); a bucket's hash is
// the XOR of the content hashes of its records; an inner node's hash is the
// XOR of its children. XOR makes every update O(depth): a changed record
// XORs its old and new hash into the leaf and each ancestor. The tree costs
// ~560 KB of memory whatever the store size and is rebuilt by a full scan
// at open.
//
// With 1M records a bucket holds ~15 records, so the descent
// (level 1 -> 2 -> 3 -> 4 -> bucket contents) touches 16 hashes per level
// for a single difference.
const (
	fanoutBits = 4
	fanout     = 1 << fanoutBits
	treeDepth  = 4 // levels below the root; level treeDepth holds the leaves
	leafBits   = fanoutBits * treeDepth
	numLeaves  = 1 << leafBits
)

type hashTree struct {
	levels [treeDepth + 1][]uint64 // levels[0] is the root (1 node)
	count  int64                   // records in the tree
	tombs  int64                   // tombstones among them
	maxTS  Timestamp               // newest timestamp seen by the open scan
}

func newHashTree() *hashTree {
	t := &hashTree{}
	for l := 0; l <= treeDepth; l++ {
		t.levels[l] = make([]uint64, 1<<(fanoutBits*l))
	}
	return t
}

// toggle XORs h into bucket b and all its ancestors (adds or removes a
// record hash).
func (t *hashTree) toggle(b uint32, h uint64) {
	for l := treeDepth; l >= 0; l-- {
		t.levels[l][b] ^= h
		b >>= fanoutBits
	}
}

// node returns the hash of node i at level l (0 if out of range).
func (t *hashTree) node(l int, i uint32) uint64 {
	if l < 0 || l > treeDepth || int(i) >= len(t.levels[l]) {
		return 0
	}
	return t.levels[l][i]
}

// digest is 16 hex chars derived from the level-1 hashes (and therefore
// from every record hash).
func (t *hashTree) digest() string {
	var b [fanout * 8]byte
	for i, h := range t.levels[1] {
		binary.BigEndian.PutUint64(b[i*8:], h)
	}
	return fmt.Sprintf("%016x", xxhash.Sum64(b[:]))
}

func (t *hashTree) clone() *hashTree {
	c := &hashTree{count: t.count, tombs: t.tombs}
	for l := range t.levels {
		c.levels[l] = append([]uint64(nil), t.levels[l]...)
	}
	return c
}

// leafRange returns the leaf buckets [lo, hi) under node i of level l.
func leafRange(l int, i uint32) (lo, hi uint32) {
	shift := uint(fanoutBits * (treeDepth - l))
	return i << shift, (i + 1) << shift
}
