package mesh

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Lifecycle states of a Mesh.
const (
	stateNew = iota
	stateRunning
	stateLeft
	stateShutdown
)

// Internal timings.
const (
	tickInterval     = 100 * time.Millisecond // decision/freeze ticker
	publishTimeout   = time.Second            // wait for a meta update broadcast
	demotionsRefresh = time.Second            // re-read Demotions at least this often
	peersWriteEvery  = time.Second            // known peers file debounce
	inboxSize        = 1024                   // queued incoming messages
	seenBroadcasts   = 4096                   // remembered broadcast ids
	keyOpTimeout     = 5 * time.Second        // wait for key op replies
	minFreezeGap     = 2 * time.Second        // lower bound of the freeze threshold
	leaveIntentGrace = 5 * time.Second        // a late leave intent turns dead into left
)

// memberState is what this node knows about one member.
type memberState struct {
	name        string
	addr        string
	status      Status
	since       time.Time // when status last changed
	meta        Meta
	metaOK      bool      // false if the last meta was undecodable
	metaErrLog  bool      // undecodable meta already logged
	wasOK       bool      // health was ok at some point while alive
	leaveIntent bool      // sent a leave intent / published leaving
	goneSince   time.Time // when it was last seen dead or left (zero: never)
	settleUntil time.Time // not a candidate before this (see Config.SettleTime)
}

// Mesh is one node's membership in the mesh. Create it with New, then
// SetHandler (optional), Start, and finally Leave and/or Shutdown. All
// methods are safe for concurrent use.
type Mesh struct {
	cfg  Config
	log  *slog.Logger
	mlc  *memberlist.Config
	now  func() time.Time
	name string

	mu        sync.Mutex
	state     int
	starting  bool   // inside Start's initial join
	conflict  string // address of a node claiming our name, seen during Start
	local     Meta
	members   map[string]*memberState
	decision  Decision
	demCache  []Demotion
	demStale  bool
	demAt     time.Time
	pendDem   []string
	events    eventRing
	subs      map[int]chan struct{}
	subSeq    int
	stats     Stats
	peersDirt bool
	handler   func(from string, payload []byte)
	keyring   *memberlist.Keyring
	keyWait   map[uint64]chan keyResponse
	seen      map[uint64]struct{}
	seenRing  []uint64
	seenNext  int
	syncQ     map[string]bool // addresses of members that came back, to push/pull with
	known     []string        // known peers loaded at Start

	ml      *memberlist.Memberlist
	bq      *memberlist.TransmitLimitedQueue
	inbox   chan []byte
	wake    chan struct{}
	publish chan struct{}
	syncSig chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped sync.Once
	lifeMu  sync.Mutex // serializes Leave and Shutdown
}

// New validates cfg and returns a Mesh that is not yet started. It does no
// network or file I/O.
func New(cfg Config) (*Mesh, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "mesh", "node", cfg.Name),
		now:     cfg.Now,
		name:    cfg.Name,
		members: make(map[string]*memberState),
		subs:    make(map[int]chan struct{}),
		keyWait: make(map[uint64]chan keyResponse),
		seen:    make(map[uint64]struct{}),
		inbox:   make(chan []byte, inboxSize),
		wake:    make(chan struct{}, 1),
		publish: make(chan struct{}, 1),
		syncSig: make(chan struct{}, 1),
		syncQ:   make(map[string]bool),
		stop:    make(chan struct{}),
		local: Meta{
			Rank:    cfg.Rank,
			Health:  HealthStarting,
			Version: cfg.Version,
		},
	}
	addr := cfg.AdvertiseAddr
	if addr == "" {
		addr = cfg.BindAddr
	}
	m.members[m.name] = &memberState{
		name:   m.name,
		addr:   addr,
		status: StatusAlive,
		since:  m.now(),
		meta:   m.local,
		metaOK: true,
	}
	m.demStale = true
	m.decision = m.decideLocked(m.now())
	return m, nil
}

// Name returns this node's name.
func (m *Mesh) Name() string { return m.name }

// SetHandler installs the handler for application messages sent by other
// nodes with Broadcast or SendTo. Call it before Start. The handler runs on
// a mesh-owned goroutine, one message at a time, and may block briefly (it
// delays the delivery of later messages). The payload is owned by the
// handler.
func (m *Mesh) SetHandler(h func(from string, payload []byte)) {
	m.mu.Lock()
	m.handler = h
	m.mu.Unlock()
}

// Start creates the memberlist node and joins the seeds and known peers.
// The initial join is synchronous and bounded by the profile's TCP timeout;
// if nobody answers, Start still returns nil and the retry loop keeps
// trying in the background. Start returns ErrDuplicateName (and leaves the
// mesh untouched) if another node at a different address already uses this
// name.
func (m *Mesh) Start() error {
	m.mu.Lock()
	if m.state != stateNew {
		m.mu.Unlock()
		return ErrAlreadyStarted
	}
	m.state = stateRunning
	m.starting = true
	m.mu.Unlock()

	if err := m.startMemberlist(); err != nil {
		m.mu.Lock()
		m.state = stateShutdown
		m.mu.Unlock()
		return err
	}

	m.wg.Add(4)
	go m.runLoop()
	go m.dispatchLoop()
	go m.publishLoop()
	go m.retryLoop()

	known := m.loadKnownPeers()
	m.mu.Lock()
	m.known = known
	m.mu.Unlock()
	targets := m.joinTargets(true)
	if len(targets) > 0 {
		n := m.joinAll(targets, true)
		m.log.Info("initial join", "targets", len(targets), "reached", n)
	}

	m.mu.Lock()
	m.starting = false
	conflict := m.conflict
	m.mu.Unlock()
	if conflict != "" {
		m.shutdown(false)
		return fmt.Errorf("%w: %q is already used by the node at %s", ErrDuplicateName, m.name, conflict)
	}
	m.wakeUp()
	return nil
}

func (m *Mesh) startMemberlist() error {
	c := memberlistConfig(m.cfg.Profile)
	c.Name = m.name
	c.Logger = newMemberlistLogger(m.log)
	host, portStr, _ := net.SplitHostPort(m.cfg.BindAddr)
	port, _ := strconv.Atoi(portStr)
	c.BindAddr = host
	c.BindPort = port
	if m.cfg.AdvertiseAddr != "" {
		ah, ap, _ := net.SplitHostPort(m.cfg.AdvertiseAddr)
		c.AdvertiseAddr = ah
		c.AdvertisePort, _ = strconv.Atoi(ap)
	} else {
		// Advertise the bind port (the profile defaults say 7946);
		// with port 0 memberlist replaces it by the port it bound.
		c.AdvertiseAddr = ""
		c.AdvertisePort = port
	}
	if m.cfg.Transport != nil {
		c.Transport = m.cfg.Transport
	}
	keys, err := m.loadKeys()
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		c.Keyring = kr
		c.GossipVerifyIncoming = true
		c.GossipVerifyOutgoing = true
		m.mu.Lock()
		m.keyring = kr
		m.mu.Unlock()
		if err := m.saveKeys(); err != nil {
			return err
		}
	}
	if m.cfg.tune != nil {
		m.cfg.tune(c)
	}
	d := &delegate{m: m}
	c.Delegate = d
	c.Events = d
	c.Conflict = d
	m.mlc = c
	m.bq = &memberlist.TransmitLimitedQueue{
		NumNodes:       m.numAlive,
		RetransmitMult: c.RetransmitMult,
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		return fmt.Errorf("start memberlist: %w", err)
	}
	self := ml.LocalNode()
	m.mu.Lock()
	m.ml = ml
	if ms := m.members[m.name]; ms != nil {
		ms.addr = self.Address()
	}
	m.mu.Unlock()
	m.log.Info("mesh started", "addr", self.Address(), "profile", m.cfg.Profile,
		"failback", m.cfg.Failback, "encrypted", c.Keyring != nil)
	return nil
}

// numAlive is the NumNodes function of the broadcast queue.
func (m *Mesh) numAlive() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.aliveLocked()
}

// running returns the memberlist if the mesh is running (started and not
// shut down; a left mesh still counts as running).
func (m *Mesh) running() (*memberlist.Memberlist, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if (m.state != stateRunning && m.state != stateLeft) || m.ml == nil {
		return nil, false
	}
	return m.ml, true
}

// defaultLeaveTimeout is used by Leave for a timeout <= 0.
const defaultLeaveTimeout = 5 * time.Second

// Leave announces a graceful departure: it sends a leave intent to every
// alive peer, publishes Health=leaving and then leaves the memberlist,
// waiting at most timeout in total for the broadcasts (timeout <= 0 means
// 5 s). Others then report this node as left, not dead. Call Shutdown
// afterwards. A second Leave returns nil at once.
func (m *Mesh) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	ml, ok := m.running()
	if !ok {
		return ErrNotRunning
	}
	m.mu.Lock()
	if m.state == stateLeft {
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	if timeout <= 0 {
		timeout = defaultLeaveTimeout
	}
	intent := encodeEnvelope(msgLeave, m.name, 0, nil)
	for _, n := range ml.Members() {
		if n.Name == m.name {
			continue
		}
		if err := ml.SendBestEffort(n, intent); err != nil {
			m.log.Debug("leave intent", "to", n.Name, "err", err)
		}
	}
	m.UpdateMeta(func(mt *Meta) { mt.Health = HealthLeaving })
	part := timeout / 2
	if err := ml.UpdateNode(part); err != nil {
		m.log.Debug("leave: meta broadcast", "err", err)
	}
	m.mu.Lock()
	m.state = stateLeft
	m.mu.Unlock()
	err := ml.Leave(timeout - part)
	m.log.Info("left the mesh", "err", err)
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// Shutdown stops the node without a leave message (others will detect it
// as dead unless Leave was called first) and stops all mesh goroutines.
// Safe to call more than once and before Start.
func (m *Mesh) Shutdown() error {
	return m.shutdown(true)
}

func (m *Mesh) shutdown(logIt bool) error {
	var err error
	m.stopped.Do(func() {
		// Wait for a Leave in progress: memberlist panics on Leave
		// after Shutdown.
		m.lifeMu.Lock()
		m.mu.Lock()
		ml := m.ml
		m.state = stateShutdown
		m.mu.Unlock()
		m.lifeMu.Unlock()
		close(m.stop)
		if ml != nil {
			if e := ml.Shutdown(); e != nil {
				err = fmt.Errorf("shutdown memberlist: %w", e)
			}
		}
		m.wg.Wait()
		m.mu.Lock()
		for id, ch := range m.subs {
			close(ch)
			delete(m.subs, id)
		}
		m.mu.Unlock()
		if logIt {
			m.log.Info("mesh shut down")
		}
	})
	return err
}

// wakeUp asks the decision loop to re-evaluate now. Never blocks.
func (m *Mesh) wakeUp() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// notifyLocked signals subscribers. m.mu must be held.
func (m *Mesh) notifyLocked() {
	for _, ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// eventLocked records an event. m.mu must be held.
func (m *Mesh) eventLocked(typ, node, detail string) {
	m.events.add(Event{Time: m.now(), Type: typ, Node: node, Detail: detail})
}

// Members returns every member seen during this run, including dead and
// left ones (with their last metadata), sorted by effective order (then
// name). Position is the 1-based position in the effective order.
func (m *Mesh) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	pos := make(map[string]int, len(m.decision.Order))
	for i, n := range m.decision.Order {
		pos[n] = i + 1
	}
	out := make([]Member, 0, len(m.members))
	for _, ms := range m.members {
		out = append(out, m.memberLocked(ms, pos))
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := out[i].Position, out[j].Position
		if pi == 0 {
			pi = math.MaxInt
		}
		if pj == 0 {
			pj = math.MaxInt
		}
		if pi != pj {
			return pi < pj
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Member is a member of the mesh as seen by this node.
type Member struct {
	Name   string
	Addr   string // host:port
	Status Status
	Role   Role
	// Position is the 1-based position in the effective order of all
	// members (candidates or not); 0 only for a member that joined after
	// the last decision was computed (it is recomputed within ~100 ms).
	Position int
	Meta
}

func (m *Mesh) memberLocked(ms *memberState, pos map[string]int) Member {
	role := m.decision.Roles[ms.name]
	if role == "" {
		role = RoleUnhealthy
	}
	return Member{
		Name:     ms.name,
		Addr:     ms.addr,
		Status:   ms.status,
		Role:     role,
		Position: pos[ms.name],
		Meta:     ms.meta,
	}
}

// Self returns this node as a Member.
func (m *Mesh) Self() Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	pos := make(map[string]int, len(m.decision.Order))
	for i, n := range m.decision.Order {
		pos[n] = i + 1
	}
	return m.memberLocked(m.members[m.name], pos)
}

// Active returns the name of the active node, "" when there is no
// candidate.
func (m *Mesh) Active() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.decision.Active
}

// Decision returns a copy of the current decision.
func (m *Mesh) Decision() Decision {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.decision
	d.Order = append([]string(nil), d.Order...)
	d.HeldDown = append([]string(nil), d.HeldDown...)
	d.Roles = make(map[string]Role, len(m.decision.Roles))
	for k, v := range m.decision.Roles {
		d.Roles[k] = v
	}
	return d
}

// Peers returns the names of alive peers (not this node), sorted.
func (m *Mesh) Peers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, ms := range m.members {
		if ms.name != m.name && (ms.status == StatusAlive || ms.status == StatusSuspect) {
			out = append(out, ms.name)
		}
	}
	sort.Strings(out)
	return out
}

// UpdateMeta lets fn edit a copy of the local metadata and publishes the
// result. If Health changes to ok, HealthySince is set to now (ms
// precision); if it changes away from ok, HealthySince is cleared. The
// local view is updated at once; the gossip update is sent by a mesh
// goroutine (bounded by a 1 s broadcast wait). Safe before Start.
func (m *Mesh) UpdateMeta(fn func(*Meta)) {
	m.mu.Lock()
	old := m.local
	cp := old
	fn(&cp)
	if cp.Health != old.Health {
		if cp.Health == HealthOK {
			cp.HealthySince = m.now().Truncate(time.Millisecond)
		} else {
			cp.HealthySince = time.Time{}
		}
	}
	m.local = cp
	self := m.members[m.name]
	m.applyMetaLocked(self, cp)
	m.notifyLocked()
	m.mu.Unlock()
	m.requestPublish()
	m.wakeUp()
}

// ResetHealthySince restarts the local node's healthy period (if it is
// healthy) so that it waits PreemptDelay again before preempting; used after
// a freeze was detected.
func (m *Mesh) ResetHealthySince() {
	m.mu.Lock()
	if m.local.Health != HealthOK {
		m.mu.Unlock()
		return
	}
	m.local.HealthySince = m.now().Truncate(time.Millisecond)
	m.members[m.name].meta = m.local
	m.notifyLocked()
	m.mu.Unlock()
	m.requestPublish()
	m.wakeUp()
}

func (m *Mesh) requestPublish() {
	select {
	case m.publish <- struct{}{}:
	default:
	}
}

// applyMetaLocked installs a new decoded meta for ms, recording health
// events and sticky demotion triggers. m.mu must be held.
func (m *Mesh) applyMetaLocked(ms *memberState, meta Meta) {
	old := ms.meta
	ms.meta = meta
	ms.metaOK = true
	ms.metaErrLog = false
	if !ms.settleUntil.IsZero() && meta.HealthySince.After(ms.goneSince) {
		ms.settleUntil = time.Time{} // it noticed and restarted its healthy period
	}
	// Frequently changing fields (lag, entries, digest, healthy-since) are
	// not logged as events.
	if old.Rank != meta.Rank || old.IRCConnected != meta.IRCConnected || old.IRCServer != meta.IRCServer ||
		old.Nick != meta.Nick || old.Version != meta.Version {
		m.eventLocked(EventUpdate, ms.name, fmt.Sprintf("%s: rank %d, irc connected %t, server %q, nick %q, version %q",
			ms.name, meta.Rank, meta.IRCConnected, meta.IRCServer, meta.Nick, meta.Version))
	}
	if old.Health == meta.Health {
		return
	}
	m.eventLocked(EventHealth, ms.name, fmt.Sprintf("%s: %s -> %s", ms.name, old.Health, meta.Health))
	if meta.Health == HealthLeaving {
		ms.leaveIntent = true
	}
	if meta.Health == HealthOK {
		if ms.status == StatusAlive || ms.status == StatusSuspect {
			ms.wasOK = true
		}
	} else if ms.wasOK {
		ms.wasOK = false
		m.failedLocked(ms.name)
	}
}

// failedLocked queues a sticky-mode demotion of name. m.mu must be held.
func (m *Mesh) failedLocked(name string) {
	if m.cfg.Failback == FailbackSticky {
		m.pendDem = append(m.pendDem, name)
	}
}

// setStatusLocked changes ms's status and records the event. m.mu must be
// held.
func (m *Mesh) setStatusLocked(ms *memberState, st Status, detail string) {
	if ms.status == st {
		return
	}
	prev := ms.status
	ms.status = st
	ms.since = m.now()
	m.peersDirt = true
	switch st {
	case StatusAlive:
		m.eventLocked(EventJoin, ms.name, detail)
		if ms.meta.Health == HealthOK {
			ms.wasOK = true
		}
	case StatusLeft:
		m.eventLocked(EventLeave, ms.name, detail)
	case StatusDead:
		m.eventLocked(EventFail, ms.name, detail)
	}
	if (st == StatusDead || st == StatusLeft) && prev != StatusDead && prev != StatusLeft {
		ms.goneSince = ms.since
		ms.wasOK = false
		m.failedLocked(ms.name)
	}
}

// Reorder clears all demotions, restoring the static order.
func (m *Mesh) Reorder() error {
	if err := m.cfg.Demotions.ClearDemotions(); err != nil {
		return fmt.Errorf("clear demotions: %w", err)
	}
	m.mu.Lock()
	m.eventLocked(EventReorder, m.name, "demotions cleared by "+m.name)
	m.demStale = true
	m.mu.Unlock()
	m.log.Info("demotions cleared")
	m.wakeUp()
	return nil
}

// Recompute re-reads the demotions and re-evaluates the decision soon
// (asynchronously, on the decision goroutine). Never blocks.
func (m *Mesh) Recompute() {
	m.mu.Lock()
	m.demStale = true
	m.mu.Unlock()
	m.wakeUp()
}

// Events returns up to n of the newest events, newest last; n <= 0 = all
// retained (up to 1000).
func (m *Mesh) Events(n int) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events.last(n)
}

// Subscribe returns a channel that receives a value (coalesced: at most one
// pending) after membership, metadata or decision changes, and a cancel
// function that closes it. The channel is also closed by Shutdown.
func (m *Mesh) Subscribe() (<-chan struct{}, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan struct{}, 1)
	id := m.subSeq
	m.subSeq++
	if m.state == stateShutdown {
		close(ch)
		return ch, func() {}
	}
	m.subs[id] = ch
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if c, ok := m.subs[id]; ok {
			delete(m.subs, id)
			close(c)
		}
	}
}

// Stats returns counters for metrics.
func (m *Mesh) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Alive, s.Suspect, s.Dead, s.Left = 0, 0, 0, 0
	for _, ms := range m.members {
		switch ms.status {
		case StatusAlive:
			s.Alive++
		case StatusSuspect:
			s.Suspect++
		case StatusDead:
			s.Dead++
		case StatusLeft:
			s.Left++
		}
	}
	s.Active = m.decision.Active
	return s
}
