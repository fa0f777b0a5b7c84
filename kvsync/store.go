// Package kvsync is meshbot's replicated factoid store: an embedded Badger
// database on every node whose replicated part (factoids, their edit log,
// channels, demotions, popularity counters) is kept equal across nodes.
//
// Every replicated record carries a hybrid logical clock timestamp and its
// writer's node name; replicas merge by last-writer-wins on (timestamp,
// node), deletes are tombstones. A local write is broadcast at once (fast
// path); a periodic anti-entropy round with one random peer compares a hash
// tree over the replicated keys and repairs whatever the broadcasts missed,
// pulling and pushing, with traffic proportional to the difference.
//
// The store snapshots itself on a schedule, and recovers by itself from a
// database it cannot open or read: it moves the broken database aside,
// restores the newest verified snapshot, reports itself unhealthy and
// returns to healthy once it has completed a full anti-entropy round with a
// peer.
//
// kvsync knows nothing of the mesh: the daemon adapts its membership layer to
// the Transport interface and routes incoming messages to HandleMessage.
package kvsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Errors returned by the store. Bad input wraps ErrInvalid with a message
// naming the problem.
var (
	ErrNotFound          = errors.New("not found")
	ErrInvalid           = errors.New("invalid")
	ErrCorrupt           = errors.New("corrupt data")
	ErrClosed            = errors.New("store closed")
	ErrSnapshotsDisabled = errors.New("snapshots disabled for an in-memory store")
	ErrDB                = errors.New("database error")
	ErrUnhealthy         = errors.New("store unhealthy")
)

// Transport is how the store reaches its peers (the daemon adapts the mesh
// to it). All methods must be safe for concurrent use. Broadcast must not
// block for long; SendTo may block while it delivers but should give up
// after a bounded time. The store never calls them while holding its locks.
type Transport interface {
	Broadcast(payload []byte)                 // best-effort to all peers
	SendTo(node string, payload []byte) error // reliable, to one peer
	Peers() []string                          // live peers, not self
}

// Config configures a Store. Zero values: SyncInterval, TombstoneTTL,
// SnapshotKeep, RequestTimeout, HealWait, PopularityFlush and MaxClockSkew
// take their DefaultConfig values; SnapshotEvery 0 means no snapshot
// schedule; nil Logger discards; nil Now is time.Now; nil OnHealth is not
// called.
type Config struct {
	Dir           string        // data directory; the store uses Dir/db and Dir/snapshots (unused when InMemory)
	Node          string        // this node's name (writer id in records); required
	InMemory      bool          // tests: no disk (snapshots disabled)
	SyncInterval  time.Duration // anti-entropy period (one random peer per period)
	SnapshotEvery time.Duration // snapshot schedule; 0 = none
	SnapshotKeep  int           // verified snapshots kept
	TombstoneTTL  time.Duration // minimum age before a tombstone may be collected
	Logger        *slog.Logger
	Now           func() time.Time
	// OnHealth is called on health changes (db error / recovered). It is
	// called from a store goroutine, must not block and must not call back
	// into the store synchronously.
	OnHealth func(ok bool, reason string)

	RequestTimeout  time.Duration // how long an anti-entropy request waits for its response
	HealWait        time.Duration // unhealthy and no peers for this long: declare healthy again
	PopularityFlush time.Duration // how often batched popularity increments are written and broadcast
	MaxClockSkew    time.Duration // remote timestamps further ahead than this do not move the local clock
}

// DefaultConfig returns the defaults; Dir and Node must still be set.
func DefaultConfig() Config {
	return Config{
		SyncInterval:    2 * time.Second,    // one round per 2 s: a missed broadcast is repaired within a few seconds
		SnapshotEvery:   24 * time.Hour,     // daily snapshots
		SnapshotKeep:    7,                  // one week of daily snapshots
		TombstoneTTL:    7 * 24 * time.Hour, // a node offline for less than a week still learns about deletes
		RequestTimeout:  10 * time.Second,   // generous: responders may be busy loading a big difference
		HealWait:        30 * time.Second,   // a lone node returns to ok 30 s after a db error
		PopularityFlush: time.Second,        // lookups counted in memory, written once a second (no per-lookup fsync)
		MaxClockSkew:    time.Hour,          // a peer's clock an hour ahead is not trusted
	}
}

func (c *Config) applyDefaults() {
	d := DefaultConfig()
	if c.SyncInterval <= 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.SnapshotKeep <= 0 {
		c.SnapshotKeep = d.SnapshotKeep
	}
	if c.TombstoneTTL <= 0 {
		c.TombstoneTTL = d.TombstoneTTL
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.HealWait <= 0 {
		c.HealWait = d.HealWait
	}
	if c.PopularityFlush <= 0 {
		c.PopularityFlush = d.PopularityFlush
	}
	if c.MaxClockSkew <= 0 {
		c.MaxClockSkew = d.MaxClockSkew
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Storage key prefixes.
const (
	prefixRecord byte = 'r' // replicated records: 'r' ks bucket(2) key
	prefixEditor byte = 'e' // local editors: 'e' mask
)

// Store is a replicated key/value store. All methods are safe for
// concurrent use.
type Store struct {
	cfg   Config
	log   *slog.Logger
	clock *Clock

	// dbMu guards the db pointer: every operation holds it for reading;
	// recovery and restore hold it for writing while they swap databases.
	dbMu sync.RWMutex
	db   *badger.DB

	// mu serialises writes and guards tree and tombs, which always
	// describe the committed replicated content of db.
	mu    sync.Mutex
	tree  *hashTree
	tombs map[string]Timestamp // storage key -> tombstone timestamp

	transport atomic.Pointer[transportBox]

	healthMu     sync.Mutex
	healthy      bool
	healthReason string
	needHeal     bool
	healSince    time.Time

	reqMu   sync.Mutex
	pending map[uint64]chan *message
	reqPeer map[uint64]string
	nextID  atomic.Uint64

	healEpoch  atomic.Uint64 // bumped on every failure and recovery
	recovering atomic.Bool   // a runtime recovery is pending or running

	peerMu   sync.Mutex
	peerSync map[string]time.Time // peer -> start time of the last completed round we initiated

	subMu  sync.Mutex
	subs   map[int]func(string)
	subSeq int
	dirty  map[string]bool
	kick   chan struct{}

	popMu sync.Mutex
	pop   map[string]int64 // factoid name -> unflushed local lookups

	inbox     chan inbound
	syncNowCh chan string
	recoverCh chan struct{}

	snapMu       sync.Mutex // serialises snapshot create/restore
	lastSnapshot atomic.Int64

	stats struct {
		rounds, failures, roundTrips      atomic.Int64
		bytesSent, bytesRecv              atomic.Int64
		recordsSent, recordsRecv          atomic.Int64
		broadcastsSent, broadcastsRecv    atomic.Int64
		droppedMessages, rejectedMessages atomic.Int64
		recoveries                        atomic.Int64
	}

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

type transportBox struct{ t Transport }

type inbound struct {
	from string
	msg  *message
	size int
	done chan struct{} // barrier: closed when reached (see waitInbox)
}

// waitInbox blocks until every message queued before the call has been
// handled (or the store closes).
func (s *Store) waitInbox() {
	done := make(chan struct{})
	select {
	case s.inbox <- inbound{done: done}:
	case <-s.ctx.Done():
		return
	}
	select {
	case <-done:
	case <-s.ctx.Done():
	}
}

// Open opens (or creates) the store. A database that cannot be opened or
// fails the verification scan does not make Open fail: it is moved aside to
// Dir/db.broken-<time>, the newest verified snapshot is restored (or the
// store starts empty), and the store reports itself unhealthy until it has
// healed from a peer (see Health). Open fails only on bad configuration or
// when even an empty database cannot be created.
func Open(cfg Config) (*Store, error) {
	cfg.applyDefaults()
	if cfg.Node == "" || len(cfg.Node) > maxNodeLen || !utf8.ValidString(cfg.Node) || strings.ContainsRune(cfg.Node, 0) {
		return nil, fmt.Errorf("%w: node name %q must be 1..%d bytes of UTF-8", ErrInvalid, cfg.Node, maxNodeLen)
	}
	if !cfg.InMemory && cfg.Dir == "" {
		return nil, fmt.Errorf("%w: Dir is required unless InMemory", ErrInvalid)
	}
	s := &Store{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "kvsync", "node", cfg.Node),
		clock:     NewClock(cfg.Now, cfg.MaxClockSkew),
		healthy:   true,
		pending:   map[uint64]chan *message{},
		reqPeer:   map[uint64]string{},
		peerSync:  map[string]time.Time{},
		subs:      map[int]func(string){},
		dirty:     map[string]bool{},
		kick:      make(chan struct{}, 1),
		pop:       map[string]int64{},
		inbox:     make(chan inbound, 1024),
		syncNowCh: make(chan string, 16),
		recoverCh: make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.nextID.Store(rand.Uint64() >> 2) // stale responses from before a restart match nothing
	if !cfg.InMemory {
		if err := os.MkdirAll(s.snapDir(), 0o700); err != nil {
			return nil, fmt.Errorf("create data dir %s: %w", cfg.Dir, err)
		}
		if snaps, err := s.readManifest(); err == nil && len(snaps) > 0 {
			s.lastSnapshot.Store(snaps[len(snaps)-1].Time.UnixNano())
		}
	}
	db, tree, tombs, err := s.openVerified()
	if err != nil {
		reason := "db-error: " + shortError(err)
		s.log.Error("database unusable, recovering", "err", err)
		db, tree, tombs, err = s.recoverDB()
		if err != nil {
			return nil, err
		}
		s.markUnhealthy(reason)
	}
	s.db, s.tree, s.tombs = db, tree, tombs
	s.clock.Update(tree.maxTS)

	s.wg.Add(3)
	go s.notifyLoop()
	go s.workLoop()
	go s.popularityLoop()
	return s, nil
}

func (s *Store) dbDir() string   { return filepath.Join(s.cfg.Dir, "db") }
func (s *Store) snapDir() string { return filepath.Join(s.cfg.Dir, "snapshots") }

// badgerOptions are tuned for small stores (thousands to a few million
// small records): small memtables and caches keep RSS low; see the package
// benchmarks for measured figures.
func (s *Store) badgerOptions(dir string, inMemory bool) badger.Options {
	opts := badger.DefaultOptions(dir)
	if inMemory {
		opts = badger.DefaultOptions("").WithInMemory(true)
	}
	return opts.
		WithSyncWrites(true).                              // acknowledged writes survive kill -9
		WithLogger(badgerLogger{s.log}).                   // warnings and errors to slog
		WithLoggingLevel(badger.WARNING).                  //
		WithMemTableSize(8 << 20).                         // default 64 MiB
		WithNumMemtables(2).                               // default 5
		WithNumLevelZeroTables(2).                         // flush L0 sooner
		WithNumLevelZeroTablesStall(8).                    //
		WithBaseTableSize(2 << 20).                        //
		WithBlockCacheSize(16 << 20).                      // default 256 MiB
		WithIndexCacheSize(0).                             // indexes kept in memory with the tables
		WithValueLogFileSize(64 << 20).                    // default 1 GiB (sparse, but mmapped)
		WithNumCompactors(2).                              // 2-core machines
		WithNumGoroutines(2).                              // Backup/stream workers
		WithCompactL0OnClose(false).                       // faster close
		WithCompression(options.None).                     // tables are small; lets verifyTables read them without the manifest
		WithChecksumVerificationMode(options.OnBlockRead). // tables are verified by verifyTables before open
		WithDetectConflicts(false)                         // writes are serialised by Store.mu
}

// openVerified opens the on-disk (or in-memory) database and runs the
// verification scan that rebuilds the hash tree.
func (s *Store) openVerified() (*badger.DB, *hashTree, map[string]Timestamp, error) {
	db, err := s.openBadger()
	if err != nil {
		return nil, nil, nil, err
	}
	tree, tombs, err := scanTree(db)
	if err != nil {
		_ = safeClose(db)
		return nil, nil, nil, err
	}
	return db, tree, tombs, nil
}

func (s *Store) openBadger() (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: badger panicked opening %s: %v", ErrCorrupt, s.dbDir(), r)
		}
	}()
	if !s.cfg.InMemory {
		if err := verifyTables(s.dbDir()); err != nil {
			return nil, err
		}
	}
	opts := s.badgerOptions(s.dbDir(), s.cfg.InMemory)
	db, err = badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: open badger %s: %w", ErrCorrupt, s.dbDir(), err)
	}
	return db, nil
}

// verifyTables checks every table file's checksums before Badger opens
// them. Badger v4.9.6 verifies tables in its own goroutines and panics
// (nil block in Table.VerifyChecksum) on a damaged block, which would kill
// the process; here the same check runs in our goroutine under recover.
func verifyTables(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: read %s: %w", ErrCorrupt, dir, err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".sst") {
			continue
		}
		if err := verifyTable(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func verifyTable(path string) (err error) {
	var mf *z.MmapFile
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: table %s: %v", ErrCorrupt, path, r)
			if mf != nil {
				_ = mf.Close(-1)
			}
		}
	}()
	mf, err = z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, z.NewFile) {
		return fmt.Errorf("%w: open table %s: %w", ErrCorrupt, path, err)
	}
	t, err := table.OpenTable(mf, table.Options{ChkMode: options.OnTableRead, Compression: options.None, BlockSize: 4 << 10, BloomFalsePositive: 0.01})
	if err != nil {
		_ = mf.Close(-1) // OpenTable closes it on some error paths only; a second close only fails
		mf = nil
		return fmt.Errorf("%w: table %s: %w", ErrCorrupt, path, err)
	}
	mf = nil
	return t.MmapFile.Close(-1)
}

func safeClose(db *badger.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: badger panicked on close: %v", ErrDB, r)
		}
	}()
	return db.Close()
}

// scanTree reads every replicated record, checks it, and builds the hash
// tree and tombstone index.
func scanTree(db *badger.DB) (tree *hashTree, tombs map[string]Timestamp, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: badger panicked during verification scan: %v", ErrCorrupt, r)
		}
	}()
	tree = newHashTree()
	tombs = map[string]Timestamp{}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte{prefixRecord}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			ks, bucket, key, ok := parseStorageKey(item.Key())
			if !ok || keyspaceName(ks) == "" || bucketOf(ks, key) != bucket {
				return fmt.Errorf("%w: bad record key %q", ErrCorrupt, item.Key())
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("%w: read %q: %w", ErrCorrupt, key, err)
			}
			r, err := decodeValue(ks, key, v)
			if err != nil {
				return err
			}
			tree.toggle(bucket, hashRecord(r))
			tree.count++
			tree.maxTS = max(tree.maxTS, r.ts)
			if r.tomb {
				tree.tombs++
				tombs[string(item.Key())] = r.ts
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: verification scan: %w", ErrCorrupt, err)
	}
	return tree, tombs, err
}

// recoverDB moves the broken database aside and restores the newest
// verified snapshot into a fresh one (or starts empty).
func (s *Store) recoverDB() (*badger.DB, *hashTree, map[string]Timestamp, error) {
	s.stats.recoveries.Add(1)
	if !s.cfg.InMemory {
		broken := fmt.Sprintf("%s.broken-%s", s.dbDir(), time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.Rename(s.dbDir(), broken); err != nil && !os.IsNotExist(err) {
			s.log.Error("move broken database aside failed; removing it", "err", err)
			if err := os.RemoveAll(s.dbDir()); err != nil {
				return nil, nil, nil, fmt.Errorf("remove broken database %s: %w", s.dbDir(), err)
			}
		} else if err == nil {
			s.log.Warn("moved broken database aside", "path", broken)
			s.pruneBroken(3)
		}
		snaps, _ := s.readManifest()
		for i := len(snaps) - 1; i >= 0; i-- {
			sn := snaps[i]
			if !sn.Verified {
				continue
			}
			db, tree, tombs, err := s.loadSnapshotInto(sn)
			if err == nil {
				s.log.Warn("restored snapshot", "id", sn.ID, "entries", tree.count-tree.tombs)
				return db, tree, tombs, nil
			}
			s.log.Error("snapshot restore failed, trying an older one", "id", sn.ID, "err", err)
			_ = os.RemoveAll(s.dbDir())
		}
	}
	db, err := s.openBadger()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create empty database: %w", err)
	}
	s.log.Warn("starting with an empty database; healing from peers")
	return db, newHashTree(), map[string]Timestamp{}, nil
}

// pruneBroken keeps the newest keep broken databases (for inspection) and
// deletes older ones, so repeated failures cannot fill the disk.
func (s *Store) pruneBroken(keep int) {
	dirs, _ := filepath.Glob(s.dbDir() + ".broken-*")
	slices.Sort(dirs) // names embed a sortable UTC time
	for len(dirs) > keep {
		if err := os.RemoveAll(dirs[0]); err != nil {
			s.log.Warn("remove old broken database", "path", dirs[0], "err", err)
		}
		dirs = dirs[1:]
	}
}

// badgerLogger bridges Badger's logger to slog.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {}

// SetTransport sets how the store reaches its peers. Call it before Start;
// without a transport the store works locally and does not replicate.
func (s *Store) SetTransport(t Transport) {
	if t == nil {
		s.transport.Store(nil)
		return
	}
	s.transport.Store(&transportBox{t})
}

func (s *Store) tr() Transport {
	if b := s.transport.Load(); b != nil {
		return b.t
	}
	return nil
}

// Start starts the anti-entropy loop, the snapshot schedule and tombstone
// collection. Calling it again does nothing.
func (s *Store) Start() {
	if s.closed.Load() {
		return
	}
	s.startOnce.Do(func() {
		s.wg.Add(2)
		go s.syncLoop()
		go s.maintenanceLoop()
	})
}

// Close flushes pending popularity counts, stops every goroutine and
// closes the database. It is safe to call more than once; later calls
// return the first call's result. It is bounded by RequestTimeout.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.cancel()
		s.wg.Wait()
		s.flushPopularity()
		s.dbMu.Lock()
		defer s.dbMu.Unlock()
		if s.db != nil {
			if err := safeClose(s.db); err != nil {
				s.closeErr = fmt.Errorf("close badger: %w", err)
			}
			s.db = nil
		}
	})
	return s.closeErr
}

// Health reports whether the store is usable and up to date. reason is ""
// when ok, else it starts with "db-error: " (a database that failed at
// open or at run time, or an operator restore in progress). An unhealthy
// store keeps serving what it has; it becomes healthy again after it has
// completed an anti-entropy round (started after the recovery) with a
// peer, or, when Peers() stays empty, HealWait after the failure. Healing
// needs Start.
func (s *Store) Health() (ok bool, reason string) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return s.healthy, s.healthReason
}

func (s *Store) markUnhealthy(reason string) {
	s.healthMu.Lock()
	changed := s.healthy || s.healthReason != reason
	s.healthy, s.healthReason = false, reason
	s.needHeal = true
	s.healSince = s.cfg.Now()
	s.healEpoch.Add(1)
	s.healthMu.Unlock()
	if changed {
		s.log.Warn("store unhealthy", "reason", reason)
		if s.cfg.OnHealth != nil {
			s.cfg.OnHealth(false, reason)
		}
	}
}

func (s *Store) markHealed(how string) {
	s.healthMu.Lock()
	if !s.needHeal {
		s.healthMu.Unlock()
		return
	}
	s.needHeal = false
	s.healthy, s.healthReason = true, ""
	s.healthMu.Unlock()
	s.log.Info("store healthy again", "how", how)
	if s.cfg.OnHealth != nil {
		s.cfg.OnHealth(true, "")
	}
}

func (s *Store) healing() (bool, time.Time) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return s.needHeal, s.healSince
}

// dbFailed handles an unexpected database error during operation: mark
// unhealthy and recover in the background.
func (s *Store) dbFailed(err error) {
	if s.closed.Load() || errors.Is(err, badger.ErrDBClosed) && s.closed.Load() {
		return
	}
	s.recovering.Store(true)
	s.markUnhealthy("db-error: " + shortError(err))
	select {
	case s.recoverCh <- struct{}{}:
	default:
	}
}

// shortError is the first line of an error, at most 200 bytes, for the
// health reason that travels in gossip metadata.
func shortError(err error) string {
	m, _, _ := strings.Cut(err.Error(), "\n")
	if len(m) > 200 {
		m = strings.ToValidUTF8(m[:200], "") + "..."
	}
	return m
}

// runRecovery replaces a failed database while holding dbMu exclusively.
func (s *Store) runRecovery() {
	defer func() {
		s.healEpoch.Add(1)
		s.recovering.Store(false)
	}()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.closed.Load() || s.db == nil {
		return
	}
	_ = safeClose(s.db)
	s.db = nil
	db, tree, tombs, err := s.recoverDB()
	if err != nil {
		s.log.Error("recovery failed", "err", err)
		// Keep trying on the next failure signal; an in-memory db cannot fail here.
		db, _ = badger.Open(s.badgerOptions("", true))
		tree, tombs = newHashTree(), map[string]Timestamp{}
	}
	s.mu.Lock()
	s.db, s.tree, s.tombs = db, tree, tombs
	s.mu.Unlock()
	s.notifyAll()
}

// withDB runs fn with the current database under dbMu (read).
func (s *Store) withDB(fn func(db *badger.DB) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return fn(s.db)
}

// dbErr classifies an error from Badger: corruption and I/O errors mark
// the store unhealthy; the result wraps ErrDB.
func (s *Store) dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrClosed) {
		return err
	}
	if errors.Is(err, badger.ErrTxnTooBig) { // a bug of ours, not a broken database
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, badger.ErrDBClosed) && s.closed.Load() {
		return ErrClosed
	}
	s.dbFailed(err)
	return fmt.Errorf("%s: %w: %w", op, ErrDB, err)
}

// view runs a read-only transaction.
func (s *Store) view(op string, fn func(txn *badger.Txn) error) error {
	err := s.withDB(func(db *badger.DB) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: badger panicked: %v", ErrCorrupt, r)
			}
		}()
		return db.View(fn)
	})
	return s.dbErr(op, err)
}

// getRecord reads one replicated record.
func getRecord(txn *badger.Txn, ks byte, key string) (record, bool, error) {
	item, err := txn.Get(storageKey(ks, key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return record{}, false, err
	}
	r, err := decodeValue(ks, key, v)
	if err != nil {
		return record{}, false, err
	}
	return r, true, nil
}

// scanPrefix iterates replicated records whose storage key starts with
// prefix; fn returns false to stop.
func scanPrefix(txn *badger.Txn, prefix []byte, fn func(r record, h uint64) bool) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 32, Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		ks, _, key, ok := parseStorageKey(item.Key())
		if !ok {
			return fmt.Errorf("%w: bad record key %q", ErrCorrupt, item.Key())
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		r, err := decodeValue(ks, key, v)
		if err != nil {
			return err
		}
		if !fn(r, hashRecord(r)) {
			return nil
		}
	}
	return nil
}

// scanAll iterates every replicated record.
func (s *Store) scanAll(fn func(r record) bool) error {
	return s.view("scan", func(txn *badger.Txn) error {
		return scanPrefix(txn, []byte{prefixRecord}, func(r record, _ uint64) bool { return fn(r) })
	})
}

// keyspacePrefix is the storage prefix of a whole keyspace.
func keyspacePrefix(ks byte) []byte { return []byte{prefixRecord, ks} }

// writeTxn stages writes of replicated records inside one Badger
// transaction; the hash tree is updated only after the commit succeeds.
type writeTxn struct {
	s       *Store
	db      *badger.DB
	txn     *badger.Txn
	applied []record
	deltas  []treeDelta
}

type treeDelta struct {
	skey      string
	bucket    uint32
	old, new  uint64
	hadOld    bool
	hasNew    bool
	oldTomb   bool
	newTomb   bool
	newTombTS Timestamp
}

func (w *writeTxn) get(ks byte, key string) (record, bool, error) { return getRecord(w.txn, ks, key) }

// put writes r if it wins over the stored version (last-writer-wins). A
// tombstone older than the TTL is never stored: it deletes an older local
// version, if any, and is otherwise dropped (see the package docs on
// tombstone collection).
func (w *writeTxn) put(r record) (bool, error) {
	old, had, err := w.get(r.ks, r.key)
	if err != nil {
		return false, err
	}
	if had && !r.wins(old) {
		return false, nil
	}
	skey := storageKey(r.ks, r.key)
	d := treeDelta{skey: string(skey), bucket: bucketOf(r.ks, r.key), hadOld: had, oldTomb: had && old.tomb}
	if had {
		d.old = hashRecord(old)
	}
	if r.tomb && w.s.expired(r.ts) {
		if !had {
			return false, nil
		}
		if err := w.write(skey, nil, true); err != nil {
			return false, err
		}
	} else {
		if err := w.write(skey, encodeValue(r), false); err != nil {
			return false, err
		}
		d.hasNew, d.new, d.newTomb, d.newTombTS = true, hashRecord(r), r.tomb, r.ts
	}
	w.deltas = append(w.deltas, d)
	w.applied = append(w.applied, r)
	return true, nil
}

// write sets or deletes a key; a transaction that grew too big for Badger
// is committed and a new one started (so a large batch of remote records
// is applied in several durable steps; a local change of a factoid and
// its log entry is far below the limit and stays atomic).
func (w *writeTxn) write(k, v []byte, del bool) error {
	op := func() error {
		if del {
			return w.txn.Delete(k)
		}
		return w.txn.Set(k, v)
	}
	err := op()
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err := w.flush(); err != nil {
			return err
		}
		err = op()
	}
	return err
}

// flush commits the staged writes and applies their tree deltas; s.mu
// must be held.
func (w *writeTxn) flush() error {
	if len(w.deltas) == 0 {
		return nil
	}
	if err := w.txn.Commit(); err != nil {
		return err
	}
	for _, d := range w.deltas {
		w.s.applyDelta(d)
	}
	w.deltas = nil
	w.txn = w.db.NewTransaction(true)
	return nil
}

func (s *Store) expired(ts Timestamp) bool {
	return ts.Physical() < s.cfg.Now().Add(-s.cfg.TombstoneTTL).UnixMilli()
}

// update runs fn in a write transaction under s.mu, commits, updates the
// tree, then notifies subscribers and (if broadcast) sends the applied
// records to all peers.
func (s *Store) update(op string, broadcast bool, fn func(w *writeTxn) error) ([]record, error) {
	var applied []record
	err := s.withDB(func(db *badger.DB) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: badger panicked: %v", ErrCorrupt, r)
			}
		}()
		s.mu.Lock()
		defer s.mu.Unlock()
		w := &writeTxn{s: s, db: db, txn: db.NewTransaction(true)}
		defer func() { w.txn.Discard() }()
		err = fn(w)
		if err == nil {
			err = w.flush()
		}
		applied = w.applied[:len(w.applied)-len(w.deltas)] // what was committed
		return err
	})
	if len(applied) > 0 {
		s.markDirty(applied)
		if broadcast {
			s.broadcast(applied)
		}
	}
	if err != nil {
		return applied, s.dbErr(op, err)
	}
	return applied, nil
}

// applyDelta updates tree and tombstone index; s.mu must be held.
func (s *Store) applyDelta(d treeDelta) {
	if d.hadOld {
		s.tree.toggle(d.bucket, d.old)
		s.tree.count--
		if d.oldTomb {
			s.tree.tombs--
			delete(s.tombs, d.skey)
		}
	}
	if d.hasNew {
		s.tree.toggle(d.bucket, d.new)
		s.tree.count++
		if d.newTomb {
			s.tree.tombs++
			s.tombs[d.skey] = d.newTombTS
		}
	}
}

// applyRemote merges records received from a peer, in transactions of
// bounded size. It returns how many records won.
func (s *Store) applyRemote(rs []record) (int, error) {
	n := 0
	for len(rs) > 0 {
		chunk := rs[:min(len(rs), 256)]
		rs = rs[len(chunk):]
		for _, r := range chunk {
			s.clock.Update(r.ts)
		}
		applied, err := s.update("apply remote records", false, func(w *writeTxn) error {
			for _, r := range chunk {
				if _, err := w.put(r); err != nil {
					return err
				}
			}
			return nil
		})
		n += len(applied)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *Store) broadcast(rs []record) {
	t := s.tr()
	if t == nil {
		return
	}
	for len(rs) > 0 {
		// Keep each payload small: one record per message unless they are tiny.
		n, size := 0, 0
		for n < len(rs) && (n == 0 || size+len(rs[n].key)+len(rs[n].value)+40 < 900) {
			size += len(rs[n].key) + len(rs[n].value) + 40
			n++
		}
		t.Broadcast(encodeMessage(&message{typ: msgRecords, records: rs[:n]}))
		s.stats.broadcastsSent.Add(1)
		rs = rs[n:]
	}
}

// HandleMessage processes a payload from a peer (the daemon routes the
// mesh's kvsync messages here). from must be the sender's name as used by
// Transport.Peers and SendTo: responses are matched to requests by id and
// sender. It validates everything, never panics on garbage, and does not
// block: work is queued to a store goroutine (which applies records and
// answers requests), and when the queue is full the message is dropped
// (anti-entropy repairs it). Safe for concurrent use.
func (s *Store) HandleMessage(from string, payload []byte) {
	if s.closed.Load() {
		return
	}
	m, err := decodeMessage(payload)
	if err == nil {
		err = validateContents(m.records)
	}
	if err != nil {
		s.stats.rejectedMessages.Add(1)
		s.log.Debug("rejected message", "from", from, "err", err)
		return
	}
	if m.typ != msgRecords {
		s.stats.bytesRecv.Add(int64(len(payload)))
	}
	if m.isResponse() {
		s.reqMu.Lock()
		ch := s.pending[m.id]
		if ch != nil && s.reqPeer[m.id] != from {
			ch = nil // a response from someone we did not ask
		}
		delete(s.pending, m.id)
		delete(s.reqPeer, m.id)
		s.reqMu.Unlock()
		if ch != nil {
			ch <- m // buffered, one response per id
		}
		return
	}
	select {
	case s.inbox <- inbound{from: from, msg: m, size: len(payload)}:
	default:
		s.stats.droppedMessages.Add(1)
	}
}

func (s *Store) workLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case in := <-s.inbox:
			s.handle(in)
		case <-s.recoverCh:
			s.runRecovery()
		}
	}
}

func (s *Store) handle(in inbound) {
	if in.done != nil {
		close(in.done)
		return
	}
	m := in.msg
	switch m.typ {
	case msgRecords:
		s.stats.broadcastsRecv.Add(1)
		if _, err := s.applyRemote(m.records); err != nil {
			s.log.Warn("apply broadcast failed", "from", in.from, "err", err)
		}
	case msgTreeReq:
		s.reply(in.from, s.answerTree(m))
	case msgLeafReq:
		resp, err := s.answerLeaves(m)
		if err != nil {
			s.log.Warn("answer leaf request failed", "from", in.from, "err", err)
			return
		}
		s.reply(in.from, resp)
	case msgPushReq:
		n, err := s.applyRemote(m.records)
		if err != nil {
			s.log.Warn("apply pushed records failed", "from", in.from, "err", err)
			return
		}
		s.stats.recordsRecv.Add(int64(n))
		s.reply(in.from, &message{typ: msgPushResp, id: m.id})
	}
}

func (s *Store) reply(to string, m *message) {
	t := s.tr()
	if t == nil {
		return
	}
	p := encodeMessage(m)
	s.stats.bytesSent.Add(int64(len(p)))
	s.stats.recordsSent.Add(int64(len(m.records)))
	// A peer that is rejoining may ask before its membership has reached
	// this node, so the first send can fail with "unknown node": retry a few
	// times (bounded, a rejoin takes milliseconds) instead of letting the
	// requester wait out its whole RequestTimeout.
	var err error
	for attempt := range replyAttempts {
		if err = t.SendTo(to, p); err == nil {
			return
		}
		if attempt+1 == replyAttempts {
			break
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(replyRetryDelay):
		}
	}
	s.log.Debug("send response failed", "to", to, "err", err)
}

const (
	replyAttempts   = 5
	replyRetryDelay = 100 * time.Millisecond
)

// Subscribe registers fn to be called with a keyspace name
// (KeyspaceFactoids, KeyspaceChannels, ...) after that keyspace changed,
// locally or by replication. Calls come from one store goroutine, are
// coalesced, and must not block. cancel unregisters fn.
func (s *Store) Subscribe(fn func(keyspace string)) (cancel func()) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.subSeq++
	id := s.subSeq
	s.subs[id] = fn
	return func() {
		s.subMu.Lock()
		defer s.subMu.Unlock()
		delete(s.subs, id)
	}
}

func (s *Store) markDirty(rs []record) {
	s.subMu.Lock()
	for _, r := range rs {
		name := keyspaceName(r.ks)
		if r.ks == ksLog {
			name = KeyspaceFactoids
		}
		s.dirty[name] = true
	}
	s.subMu.Unlock()
	s.kickNotify()
}

func (s *Store) markDirtyName(name string) {
	s.subMu.Lock()
	s.dirty[name] = true
	s.subMu.Unlock()
	s.kickNotify()
}

func (s *Store) notifyAll() {
	s.subMu.Lock()
	for _, n := range []string{KeyspaceFactoids, KeyspaceChannels, KeyspaceDemotions, KeyspacePopularity, KeyspaceEditors} {
		s.dirty[n] = true
	}
	s.subMu.Unlock()
	s.kickNotify()
}

func (s *Store) kickNotify() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Store) notifyLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		}
		s.subMu.Lock()
		names := make([]string, 0, len(s.dirty))
		for n := range s.dirty {
			names = append(names, n)
		}
		clear(s.dirty)
		fns := make([]func(string), 0, len(s.subs))
		for _, fn := range s.subs {
			fns = append(fns, fn)
		}
		s.subMu.Unlock()
		for _, n := range names {
			for _, fn := range fns {
				fn(n)
			}
		}
	}
}

// Stats describes the store.
type Stats struct {
	Entries         int64     // live replicated records (tombstones excluded)
	Tombstones      int64     // tombstones not yet collected
	Digest          string    // 16 hex chars; equal iff the replicated content is equal
	SyncRounds      int64     // anti-entropy rounds completed (initiated here)
	SyncFailures    int64     // anti-entropy rounds that failed (timeout, send error)
	SyncRoundTrips  int64     // request/response pairs of rounds initiated here
	SyncBytesSent   int64     // anti-entropy bytes sent (requests and responses)
	SyncBytesRecv   int64     // anti-entropy bytes received
	SyncRecordsSent int64     // records sent by anti-entropy
	SyncRecordsRecv int64     // records received by anti-entropy that won locally
	BroadcastsSent  int64     // broadcast payloads sent
	BroadcastsRecv  int64     // broadcast payloads received
	Dropped         int64     // messages dropped because the queue was full
	Rejected        int64     // malformed messages rejected
	Recoveries      int64     // database recoveries (open or runtime)
	LastSnapshot    time.Time // zero if none
	DiskBytes       int64     // Badger LSM + value log size
	Healthy         bool
	Health          string // reason when not healthy
}

// Stats returns counters and the digest.
func (s *Store) Stats() Stats {
	st := Stats{
		SyncRounds:      s.stats.rounds.Load(),
		SyncFailures:    s.stats.failures.Load(),
		SyncRoundTrips:  s.stats.roundTrips.Load(),
		SyncBytesSent:   s.stats.bytesSent.Load(),
		SyncBytesRecv:   s.stats.bytesRecv.Load(),
		SyncRecordsSent: s.stats.recordsSent.Load(),
		SyncRecordsRecv: s.stats.recordsRecv.Load(),
		BroadcastsSent:  s.stats.broadcastsSent.Load(),
		BroadcastsRecv:  s.stats.broadcastsRecv.Load(),
		Dropped:         s.stats.droppedMessages.Load(),
		Rejected:        s.stats.rejectedMessages.Load(),
		Recoveries:      s.stats.recoveries.Load(),
	}
	if ns := s.lastSnapshot.Load(); ns != 0 {
		st.LastSnapshot = time.Unix(0, ns).UTC()
	}
	s.mu.Lock()
	if s.tree != nil {
		st.Entries = s.tree.count - s.tree.tombs
		st.Tombstones = s.tree.tombs
		st.Digest = s.tree.digest()
	}
	s.mu.Unlock()
	if !s.cfg.InMemory {
		st.DiskBytes = diskUsage(s.dbDir())
	}
	st.Healthy, st.Health = s.Health()
	return st
}

// diskUsage sums the allocated size of the files under dir (Badger's
// files are sparse, so their apparent size overstates it).
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// Digest returns Stats().Digest without the other work.
func (s *Store) Digest() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tree.digest()
}

// randomPeer picks one live peer, or "".
func randomPeer(peers []string) string {
	if len(peers) == 0 {
		return ""
	}
	return peers[rand.IntN(len(peers))]
}
