package kvsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Anti-entropy protocol. The initiator A drives a round with one peer B
// over request/response pairs (SendTo, request ids, timeouts; responses
// arrive through HandleMessage):
//
//  1. tree-req(level 1, A's 16 hashes) -> B answers with its level-2 hashes
//     under every level-1 node that differs.
//  2. A compares them with its own, and sends tree-req(level 3, A's hashes
//     under every differing level-2 node) -> B answers with its level-4
//     (bucket) hashes under every differing level-3 node.
//  3. A compares, and sends leaf-req with its record hashes for every
//     differing bucket -> B answers with the records A lacks and the hashes
//     it lacks itself.
//  4. A merges B's records and pushes the records B asked for (push-req,
//     acknowledged by push-resp).
//
// Each pair descends two tree levels, so one differing record among a
// million is found and repaired in 4 round trips and about 1.2 KB. Both
// sides end equal (pull and push). Large differences are split into
// requests of bounded size; a leaf response that would be too large says
// "more" and A repeats that request after merging.
const (
	maxTreeEntriesPerReq = 1024      // A's hashes per tree request (response <= 16x)
	maxLeafHashesPerReq  = 4096      // A's record hashes per leaf request
	maxLeafBucketsPerReq = 256       // buckets per leaf request
	maxRespBytes         = 256 << 10 // records per leaf response / push request
	maxLeafRepeats       = 1000      // "more" responses followed per chunk
	maxTreeRespEntries   = 1 << 16   // cap on a tree response (hostile requests)
)

// errTimeout is returned when a request gets no response in time.
var errTimeout = errors.New("request timed out")

type pendingReq struct {
	peer string
	ch   chan *message
}

// call sends a request to peer and waits for the response with the same id.
func (s *Store) call(ctx context.Context, peer string, m *message, want byte) (*message, error) {
	t := s.tr()
	if t == nil {
		return nil, errors.New("no transport")
	}
	m.id = s.nextID.Add(1)
	ch := make(chan *message, 1)
	s.reqMu.Lock()
	s.pending[m.id] = ch
	s.reqPeer[m.id] = peer
	s.reqMu.Unlock()
	defer func() {
		s.reqMu.Lock()
		delete(s.pending, m.id)
		delete(s.reqPeer, m.id)
		s.reqMu.Unlock()
	}()
	p := encodeMessage(m)
	s.stats.bytesSent.Add(int64(len(p)))
	s.stats.recordsSent.Add(int64(len(m.records)))
	s.stats.roundTrips.Add(1)
	if err := t.SendTo(peer, p); err != nil {
		return nil, fmt.Errorf("send to %s: %w", peer, err)
	}
	timer := time.NewTimer(s.cfg.RequestTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.typ != want {
			return nil, fmt.Errorf("%w: response type %d to request type %d", ErrInvalid, r.typ, m.typ)
		}
		return r, nil
	case <-timer.C:
		return nil, fmt.Errorf("%s from %s: %w", "response", peer, errTimeout)
	case <-ctx.Done():
		return nil, ErrClosed
	}
}

// SyncNow asks for an anti-entropy round with peer as soon as possible
// (e.g. when the peer joins). It does not block; requests beyond a small
// queue are dropped (the periodic rounds still run). It has effect only
// after Start.
func (s *Store) SyncNow(peer string) {
	select {
	case s.syncNowCh <- peer:
	default:
	}
}

// syncWith runs one full anti-entropy round with peer.
func (s *Store) syncWith(ctx context.Context, peer string) error {
	start := s.cfg.Now()
	s.mu.Lock()
	mine := make([]treeEntry, fanout)
	for i := range mine {
		mine[i] = treeEntry{idx: uint32(i), hash: s.tree.node(1, uint32(i))}
	}
	s.mu.Unlock()
	level := 1
	var buckets []uint32
	for {
		theirs, err := s.treeRound(ctx, peer, level, mine)
		if err != nil {
			return err
		}
		diff := s.differing(level+1, theirs)
		if len(diff) == 0 {
			break
		}
		if level+1 == treeDepth {
			buckets = diff
			break
		}
		level += 2
		s.mu.Lock()
		mine = mine[:0]
		for _, d := range diff {
			for c := uint32(0); c < fanout; c++ {
				idx := d<<fanoutBits | c
				mine = append(mine, treeEntry{idx: idx, hash: s.tree.node(level, idx)})
			}
		}
		s.mu.Unlock()
	}
	if len(buckets) > 0 {
		if err := s.syncLeaves(ctx, peer, buckets); err != nil {
			return err
		}
	}
	s.peerMu.Lock()
	s.peerSync[peer] = start
	s.peerMu.Unlock()
	s.stats.rounds.Add(1)
	return nil
}

// treeRound sends the entries (chunked) and collects the peer's child
// hashes of differing nodes.
func (s *Store) treeRound(ctx context.Context, peer string, level int, mine []treeEntry) ([]treeEntry, error) {
	var theirs []treeEntry
	for len(mine) > 0 {
		chunk := mine[:min(len(mine), maxTreeEntriesPerReq)]
		mine = mine[len(chunk):]
		resp, err := s.call(ctx, peer, &message{typ: msgTreeReq, level: uint8(level), nodes: chunk}, msgTreeResp)
		if err != nil {
			return nil, err
		}
		if len(resp.nodes) > 0 && int(resp.level) != level+1 {
			return nil, fmt.Errorf("%w: tree response level %d, want %d", ErrInvalid, resp.level, level+1)
		}
		theirs = append(theirs, resp.nodes...)
	}
	return theirs, nil
}

// differing returns the indexes of level-l nodes whose hash differs from
// ours.
func (s *Store) differing(l int, theirs []treeEntry) []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d []uint32
	for _, e := range theirs {
		if s.tree.node(l, e.idx) != e.hash {
			d = append(d, e.idx)
		}
	}
	return d
}

// answerTree answers a tree request: our child hashes under every node
// whose hash differs from the requester's.
func (s *Store) answerTree(m *message) *message {
	resp := &message{typ: msgTreeResp, id: m.id, level: m.level + 1}
	if int(m.level) >= treeDepth {
		resp.level = treeDepth
		return resp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range m.nodes {
		if s.tree.node(int(m.level), e.idx) == e.hash {
			continue
		}
		if len(resp.nodes)+fanout > maxTreeRespEntries {
			break
		}
		for c := uint32(0); c < fanout; c++ {
			idx := e.idx<<fanoutBits | c
			resp.nodes = append(resp.nodes, treeEntry{idx: idx, hash: s.tree.node(int(m.level)+1, idx)})
		}
	}
	return resp
}

// bucketRecords calls fn for every record in bucket b.
func bucketRecords(txn *badger.Txn, b uint32, fn func(r record, h uint64) bool) error {
	for _, ks := range replicatedKeyspaces {
		p := []byte{prefixRecord, ks, byte(b >> 8), byte(b)}
		stop := false
		err := scanPrefix(txn, p, func(r record, h uint64) bool {
			if !fn(r, h) {
				stop = true
				return false
			}
			return true
		})
		if err != nil || stop {
			return err
		}
	}
	return nil
}

func (s *Store) bucketHashes(buckets []uint32) ([]bucketHashes, error) {
	out := make([]bucketHashes, 0, len(buckets))
	err := s.view("list bucket", func(txn *badger.Txn) error {
		for _, b := range buckets {
			bh := bucketHashes{bucket: b}
			if err := bucketRecords(txn, b, func(_ record, h uint64) bool {
				bh.hashes = append(bh.hashes, h)
				return true
			}); err != nil {
				return err
			}
			out = append(out, bh)
		}
		return nil
	})
	return out, err
}

// recordsByHash returns our records whose hashes are listed.
func (s *Store) recordsByHash(want []bucketHashes) ([]record, error) {
	var out []record
	err := s.view("read wanted records", func(txn *badger.Txn) error {
		for _, bh := range want {
			set := make(map[uint64]bool, len(bh.hashes))
			for _, h := range bh.hashes {
				set[h] = true
			}
			if err := bucketRecords(txn, bh.bucket, func(r record, h uint64) bool {
				if set[h] {
					out = append(out, r)
				}
				return true
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// answerLeaves answers a leaf request: our records the requester lacks
// (bounded by maxRespBytes, with more set if cut) and the requester's
// hashes we lack.
func (s *Store) answerLeaves(m *message) (*message, error) {
	resp := &message{typ: msgLeafResp, id: m.id}
	size := 0
	err := s.view("answer leaf request", func(txn *badger.Txn) error {
		for _, bh := range m.buckets {
			theirs := make(map[uint64]bool, len(bh.hashes))
			for _, h := range bh.hashes {
				theirs[h] = true
			}
			ours := map[uint64]bool{}
			if err := bucketRecords(txn, bh.bucket, func(r record, h uint64) bool {
				ours[h] = true
				if theirs[h] {
					return true
				}
				sz := len(r.key) + len(r.value) + len(r.node) + 16
				if size+sz > maxRespBytes && len(resp.records) > 0 {
					resp.more = true
					return true
				}
				size += sz
				resp.records = append(resp.records, r)
				return true
			}); err != nil {
				return err
			}
			var want []uint64
			for _, h := range bh.hashes {
				if !ours[h] {
					want = append(want, h)
				}
			}
			if len(want) > 0 {
				resp.buckets = append(resp.buckets, bucketHashes{bucket: bh.bucket, hashes: want})
			}
		}
		return nil
	})
	return resp, err
}

// syncLeaves exchanges the contents of differing buckets.
func (s *Store) syncLeaves(ctx context.Context, peer string, buckets []uint32) error {
	for len(buckets) > 0 {
		// Build a chunk of buckets whose hash lists fit one request.
		mine, err := s.bucketHashes(buckets[:min(len(buckets), maxLeafBucketsPerReq)])
		if err != nil {
			return err
		}
		n, total := 0, 0
		for n < len(mine) && (n == 0 || total+len(mine[n].hashes) <= maxLeafHashesPerReq) {
			total += len(mine[n].hashes)
			n++
		}
		chunk := append([]uint32(nil), buckets[:n]...)
		buckets = buckets[n:]
		req := mine[:n]
		for i := 0; i < maxLeafRepeats; i++ {
			if i > 0 {
				if req, err = s.bucketHashes(chunk); err != nil {
					return err
				}
			}
			resp, err := s.call(ctx, peer, &message{typ: msgLeafReq, buckets: req}, msgLeafResp)
			if err != nil {
				return err
			}
			won, err := s.applyRemote(resp.records)
			s.stats.recordsRecv.Add(int64(won))
			if err != nil {
				return err
			}
			if len(resp.buckets) > 0 {
				if err := s.push(ctx, peer, resp.buckets); err != nil {
					return err
				}
			}
			if !resp.more {
				break
			}
		}
	}
	return nil
}

// push sends the peer the records it asked for, in bounded requests.
func (s *Store) push(ctx context.Context, peer string, want []bucketHashes) error {
	rs, err := s.recordsByHash(want)
	if err != nil {
		return err
	}
	for len(rs) > 0 {
		n, size := 0, 0
		for n < len(rs) && (n == 0 || size+len(rs[n].key)+len(rs[n].value)+len(rs[n].node)+16 <= maxRespBytes) {
			size += len(rs[n].key) + len(rs[n].value) + len(rs[n].node) + 16
			n++
		}
		if _, err := s.call(ctx, peer, &message{typ: msgPushReq, records: rs[:n]}, msgPushResp); err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

// syncLoop runs anti-entropy: every SyncInterval with one random peer, at
// once for SyncNow requests, and more often while the store heals.
func (s *Store) syncLoop() {
	defer s.wg.Done()
	timer := time.NewTimer(s.cfg.SyncInterval)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case peer := <-s.syncNowCh:
			s.runRound(peer)
			continue
		case <-timer.C:
		}
		heal, since := s.healing()
		var peers []string
		if t := s.tr(); t != nil {
			peers = t.Peers()
		}
		if peer := randomPeer(peers); peer != "" {
			s.runRound(peer)
		} else if heal && !s.recovering.Load() && s.cfg.Now().Sub(since) >= s.cfg.HealWait {
			s.markHealed("no peers to heal from")
		}
		wait := s.cfg.SyncInterval
		if heal, _ = s.healing(); heal {
			wait = min(wait, 250*time.Millisecond)
		}
		timer.Reset(wait)
	}
}

// runRound runs one round; a completed round heals an unhealthy store if
// no database failure happened while it ran.
func (s *Store) runRound(peer string) {
	if peer == "" || peer == s.cfg.Node {
		return
	}
	epoch := s.healEpoch.Load()
	busy := s.recovering.Load()
	if err := s.syncWith(s.ctx, peer); err != nil {
		s.stats.failures.Add(1)
		s.log.Debug("anti-entropy round failed", "peer", peer, "err", err)
		return
	}
	if heal, _ := s.healing(); heal && !busy && epoch == s.healEpoch.Load() {
		s.markHealed("synced with " + peer)
	}
}

// maintenanceLoop collects tombstones and takes scheduled snapshots.
func (s *Store) maintenanceLoop() {
	defer s.wg.Done()
	tick := min(max(s.cfg.TombstoneTTL/4, s.cfg.SyncInterval), time.Minute)
	t := time.NewTicker(tick)
	defer t.Stop()
	opened := s.cfg.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.collectTombstones(); err != nil {
			s.log.Warn("tombstone collection failed", "err", err)
		} else if n > 0 {
			s.log.Debug("collected tombstones", "count", n)
		}
		if s.cfg.InMemory || s.cfg.SnapshotEvery <= 0 {
			continue
		}
		if ok, _ := s.Health(); !ok {
			continue // never record a half-healed store as known-good
		}
		last := time.Unix(0, s.lastSnapshot.Load())
		due := s.lastSnapshot.Load() != 0 && s.cfg.Now().Sub(last) >= s.cfg.SnapshotEvery
		first := s.lastSnapshot.Load() == 0 && s.cfg.Now().Sub(opened) >= min(s.cfg.SnapshotEvery, 10*time.Minute)
		if due || first {
			if _, err := s.CreateSnapshot(); err != nil {
				s.log.Error("scheduled snapshot failed", "err", err)
			}
		}
	}
}

// collectTombstones deletes tombstones older than TombstoneTTL that every
// current peer has also seen: for each live peer we need a completed round
// (initiated here) that started after the tombstone's TTL had run out.
// Until then it stays, is part of the tree and is still synced. A peer that
// collected it earlier ignores it when it arrives again (expired tombstones
// are never stored), so collection never causes endless re-sync; and a
// replica that still holds an older live version deletes that version.
// The remaining risk is the usual one: a node offline for longer than the
// TTL can bring back a record deleted meanwhile.
func (s *Store) collectTombstones() (int, error) {
	cutoff := s.cfg.Now().Add(-s.cfg.TombstoneTTL)
	var peers []string
	if t := s.tr(); t != nil {
		peers = t.Peers()
	}
	s.peerMu.Lock()
	for _, p := range peers {
		last, ok := s.peerSync[p]
		if !ok {
			s.peerMu.Unlock()
			return 0, nil
		}
		if c := last.Add(-s.cfg.TombstoneTTL); c.Before(cutoff) {
			cutoff = c
		}
	}
	s.peerMu.Unlock()
	type cand struct {
		skey string
		ts   Timestamp
	}
	var cands []cand
	s.mu.Lock()
	for k, ts := range s.tombs {
		if ts.Physical() < cutoff.UnixMilli() {
			cands = append(cands, cand{k, ts})
		}
	}
	s.mu.Unlock()
	if len(cands) == 0 {
		return 0, nil
	}
	applied, err := s.update("collect tombstones", false, func(w *writeTxn) error {
		for _, c := range cands {
			ks, _, key, ok := parseStorageKey([]byte(c.skey))
			if !ok {
				continue
			}
			if err := w.del(ks, key, c.ts); err != nil {
				return err
			}
		}
		return nil
	})
	return len(applied), err
}

// del removes a tombstone if it is still the stored version.
func (w *writeTxn) del(ks byte, key string, ts Timestamp) error {
	old, had, err := w.get(ks, key)
	if err != nil || !had || !old.tomb || old.ts != ts {
		return err
	}
	skey := storageKey(ks, key)
	if err := w.write(skey, nil, true); err != nil {
		return err
	}
	w.deltas = append(w.deltas, treeDelta{skey: string(skey), bucket: bucketOf(ks, key), old: hashRecord(old), hadOld: true, oldTomb: true})
	w.applied = append(w.applied, old)
	return nil
}
