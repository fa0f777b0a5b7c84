// Package bot is meshbot's IRC side: one girc connection per attempt with
// server failover and backoff, its own presence model, the "who answers"
// rule (active node, hedging, guard, freeze detection, handoff), a flood-safe
// sender, and the Encyclopedia-compatible factoid commands.
//
// bot does not import mesh or kvsync: the daemon adapts them to the Store
// and View types declared here.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lrstanley/girc"
)

// Errors.
var (
	// ErrNotFound is returned by Store.GetFactoid for an absent factoid.
	ErrNotFound = errors.New("not found")
	// ErrInvalidConfig wraps every configuration error from New.
	ErrInvalidConfig = errors.New("invalid bot config")
	// ErrRunning is returned by Run when the bot is already running.
	ErrRunning = errors.New("bot already running")
	// ErrClosed is returned by Run and Handoff after Close.
	ErrClosed = errors.New("bot closed")
)

// Factoid is one factoid as the bot sees it.
type Factoid struct {
	Name, Value, Author string
	Added               time.Time
	UpdatedBy           string
	Updated             time.Time
	Forgotten           bool
	Popularity          int64
}

// Store is the factoid database as the bot needs it (the lead adapts kvsync).
// All methods are safe for concurrent use and may block briefly (disk I/O).
// The bot calls them from its event loop only.
type Store interface {
	// GetFactoid returns errors.Is(err, ErrNotFound) when absent; a
	// forgotten factoid is returned with Forgotten=true.
	GetFactoid(name string) (Factoid, error)
	SetFactoid(name, value, author string) (Factoid, error)
	ForgetFactoid(name, author string) error
	UnforgetFactoid(name, author string) error
	SearchFactoids(words string, limit int) ([]Factoid, error)
	CountLookup(name string) error
	Channels() ([]string, error)
	// Editors returns hostmask patterns "nick!user@host" with * and ?, or
	// "account:NAME".
	Editors() ([]string, error)
}

// Peer is one mesh node as the bot needs it.
type Peer struct {
	Name    string
	Nick    string // last known IRC nick ("" if unknown)
	Rank    int    // static rank
	Alive   bool   // gossip says alive (alive or suspect)
	Leaving bool   // the node announced a graceful leave
	Healthy bool
}

// View is the mesh as the bot needs it (the lead adapts mesh).
type View struct {
	Self       string // this node's name
	Active     string // name of the active node, "" if none
	Order      []Peer // effective order (most preferred first), includes self and dead nodes
	HotStandby bool   // this node should sit silently in all channels
}

func (v View) clone() View {
	v.Order = append([]Peer(nil), v.Order...)
	return v
}

// State is the IRC state the lead publishes into gossip.
type State struct {
	Connected bool
	Server    string
	Nick      string
	LagMS     int64
	Healthy   bool   // connected and lag below LagLimit
	Reason    string // why not healthy: "irc-down" or "lagged"
}

// Health reasons in State.Reason.
const (
	ReasonIRCDown = "irc-down"
	ReasonLagged  = "lagged"
)

// Stats are counters since New. All fields are cumulative except LagMS and
// QueueLen.
type Stats struct {
	Answers        int64 // questions answered (replies queued)
	Hedges         int64 // questions that waited for a higher-ranked bot
	GuardHits      int64 // hedged/pending questions dropped because another bot spoke
	DroppedStale   int64 // questions dropped as backlog after a freeze, or stale replies
	DroppedFull    int64 // lines dropped because the send queue was full
	DroppedOffline int64 // lines dropped because there was no connection
	LinesSent      int64 // lines written to the server
	Connects       int64 // successful registrations
	LagMS          int64 // last measured lag
	QueueLen       int64 // lines waiting in the send queues
}

// Config configures a Bot. Zero values: see DefaultConfig for what each
// zero duration or empty string means.
type Config struct {
	Name                  string   // node name (for logs)
	Servers               []string // host:port, tried in order, with backoff; required
	TLS                   bool
	TLSInsecureSkipVerify bool   // tests only
	Nick                  string // required; this node's own nick
	User, RealName        string // "" = Nick
	SASLUser              string // "" = no SASL
	SASLPassword          string
	BotChannel            string                // required
	RelayChannel          string                // "" = BotChannel
	Prefix                string                // "" = "!"
	Hedge                 time.Duration         // how long an active node waits for a higher-ranked bot still in the channel; 0 = 1500ms
	HotStandby            bool                  // also compute hot standby locally (first usable candidate after Active); View.HotStandby always counts
	IsPrimary             func() bool           // may this node accept edits from IRC; called from the event loop; nil = always (no read-only copies)
	PrimaryNick           func() string         // where edits go, named in the read-only reply; nil or "" = "the primary bot"
	LagLimit              time.Duration         // lag (PING RTT) above this: State.Healthy=false, Reason "lagged"; no PONG for max(3*LagLimit, 30s) reconnects; 0 = 10s
	PingInterval          time.Duration         // lag probe period; 0 = 5s
	HandoffTimeout        time.Duration         // max wait for the successor (Handoff) or the active node's nick (parting as a standby); 0 = 10s
	Store                 Store                 // required
	OnState               func(State)           // called from the event loop on every IRC state change; must not block; nil = ignored
	OnReorder             func(by string) error // "@reorder" by an editor in the bot channel (by = nick); called from the event loop, should return quickly; nil = ignored
	Logger                *slog.Logger          // nil = discard
	Now                   func() time.Time      // nil = time.Now; clock of the repeat filter and alias-edit confirmation (freeze and hedge timing use the monotonic clock)
	// Dial opens the TCP connection; nil = net.Dialer with a 10 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// SendRate is the sender's sustained rate in lines per second and
	// SendBurst its bucket size (0 = defaults).
	SendRate  float64
	SendBurst int
	// QueueSize is the capacity of each send queue (0 = default).
	QueueSize int
}

// DefaultConfig returns the defaults; Servers, Nick, BotChannel and Store
// must still be set.
func DefaultConfig() Config {
	return Config{
		Prefix:         "!",                     // Encyclopedia's prefixchar
		Hedge:          1500 * time.Millisecond, // wait for a higher-ranked bot's answer; 0 = 1500ms
		LagLimit:       10 * time.Second,        // lag above this reports "lagged"; 0 = 10s
		PingInterval:   5 * time.Second,         // lag probe period; 0 = 5s
		HandoffTimeout: 10 * time.Second,        // max wait for the successor; 0 = 10s
		SendRate:       2,                       // lines/s; ngircd 26.1 (default limits) relays 4/s with growing lag, 2/s with none; 0 = 2
		SendBurst:      5,                       // burst; 0 = 5
		QueueSize:      256,                     // per queue; 0 = 256
	}
}

// Bot is one node's IRC client. Its methods are safe for concurrent use.
type Bot struct {
	cfg Config
	log *slog.Logger

	// inputs to the event loop
	evC       chan ircEvent
	wake      chan struct{} // view/channels changed (coalesced)
	reqC      chan func(*loopState)
	viewMu    sync.Mutex
	view      View
	chanDirty atomic.Bool

	// sender
	ctrlQ chan outLine
	msgQ  chan outLine

	// current connection
	connMu  sync.Mutex
	client  *girc.Client
	sessID  uint64
	regSess atomic.Uint64 // session id that got RPL_WELCOME

	// freeze detection, in nanoseconds since epoch (monotonic)
	epoch       time.Time
	lastTick    atomic.Int64
	freezeUntil atomic.Int64 // until then questions are long-freeze backlog (dropped)
	stallUntil  atomic.Int64 // until then questions are short-stall backlog (hedged)
	resumedFlag atomic.Bool
	lastFreeze  atomic.Int64 // unix nanos of the last detected freeze
	longFrozeAt atomic.Int64 // mono time of the last long freeze: replies queued before it are stale

	partMu   sync.Mutex
	partedAt map[string]time.Time // channel (lowercased) -> when we last decided to part it

	stats struct {
		answers, hedges, guard, stale, full, offline, sent, connects, lag atomic.Int64
	}

	runMu    sync.Mutex
	running  bool
	closed   bool
	cancel   context.CancelFunc
	runDone  chan struct{}
	quitting atomic.Bool // Handoff finished: Run stops reconnecting
}

// New validates cfg, fills defaults and returns a Bot. Run starts it.
func New(cfg Config) (*Bot, error) {
	d := DefaultConfig()
	if cfg.Prefix == "" {
		cfg.Prefix = d.Prefix
	}
	if cfg.Hedge <= 0 {
		cfg.Hedge = d.Hedge
	}
	if cfg.LagLimit <= 0 {
		cfg.LagLimit = d.LagLimit
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = d.PingInterval
	}
	if cfg.HandoffTimeout <= 0 {
		cfg.HandoffTimeout = d.HandoffTimeout
	}
	if cfg.SendRate <= 0 {
		cfg.SendRate = d.SendRate
	}
	if cfg.SendBurst <= 0 {
		cfg.SendBurst = d.SendBurst
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = d.QueueSize
	}
	if cfg.User == "" {
		cfg.User = cfg.Nick
	}
	if cfg.RealName == "" {
		cfg.RealName = cfg.Nick
	}
	if cfg.RelayChannel == "" {
		cfg.RelayChannel = cfg.BotChannel
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := validate(&cfg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	b := &Bot{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "bot", "node", cfg.Name),
		evC:   make(chan ircEvent, 512),
		wake:  make(chan struct{}, 1),
		reqC:  make(chan func(*loopState), 16),
		ctrlQ: make(chan outLine, cfg.QueueSize),
		msgQ:  make(chan outLine, cfg.QueueSize),
	}
	b.epoch = time.Now()
	b.lastTick.Store(b.mono(time.Now()))
	return b, nil
}

func validate(cfg *Config) error {
	if len(cfg.Servers) == 0 {
		return errors.New("servers: at least one host:port is required")
	}
	for _, s := range cfg.Servers {
		if _, _, err := splitServer(s); err != nil {
			return fmt.Errorf("server %q: %w", s, err)
		}
	}
	if !girc.IsValidNick(cfg.Nick) {
		return fmt.Errorf("nick %q is not a valid IRC nick", cfg.Nick)
	}
	if !girc.IsValidUser(cfg.User) {
		return fmt.Errorf("user %q is not a valid IRC user name", cfg.User)
	}
	if !girc.IsValidChannel(cfg.BotChannel) {
		return fmt.Errorf("bot channel %q is not a valid channel name", cfg.BotChannel)
	}
	if !girc.IsValidChannel(cfg.RelayChannel) {
		return fmt.Errorf("relay channel %q is not a valid channel name", cfg.RelayChannel)
	}
	if strings.ContainsAny(cfg.Prefix, " \r\n\x00") {
		return fmt.Errorf("prefix %q must not contain spaces or control characters", cfg.Prefix)
	}
	if cfg.Store == nil {
		return errors.New("store is required")
	}
	if (cfg.SASLUser == "") != (cfg.SASLPassword == "") {
		return errors.New("sasl user and password must both be set or both be empty")
	}
	return nil
}

func splitServer(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("port %q out of range", port)
	}
	if host == "" {
		return "", 0, errors.New("empty host")
	}
	return host, p, nil
}

// SetView is called by the lead on every mesh change. It never blocks.
func (b *Bot) SetView(v View) {
	b.viewMu.Lock()
	b.view = v.clone()
	b.viewMu.Unlock()
	b.poke()
}

func (b *Bot) getView() View {
	b.viewMu.Lock()
	defer b.viewMu.Unlock()
	return b.view.clone()
}

// ChannelsChanged tells the bot that Store.Channels() changed. It never
// blocks.
func (b *Bot) ChannelsChanged() {
	b.chanDirty.Store(true)
	b.poke()
}

func (b *Bot) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Announce queues msg for the bot channel. It never blocks; the line is
// dropped (and counted) when the queue is full or there is no connection.
func (b *Bot) Announce(msg string) { b.enqueueMsg(b.cfg.BotChannel, msg, false) }

// Alert queues msg for the relay channel; like Announce.
func (b *Bot) Alert(msg string) { b.enqueueMsg(b.cfg.RelayChannel, msg, false) }

// Resumed tells the bot that the process was frozen for a long time (e.g.
// SIGSTOP): for 2*Hedge questions are dropped as backlog. It never blocks.
func (b *Bot) Resumed() {
	b.markFreeze(time.Now(), time.Hour)
}

// mono is t on the bot's monotonic clock.
func (b *Bot) mono(t time.Time) int64 { return int64(t.Sub(b.epoch)) }

// longFreeze is the gap from which a freeze counts as long: long enough that
// the mesh has likely failed over and the backlog is older than the hedge
// window, so it is dropped. Shorter stalls (a loaded machine, a GC pause)
// hedge their backlog instead: answered only if no other bot speaks first.
func (b *Bot) longFreeze() time.Duration { return 2 * b.cfg.Hedge }

// Freeze modes of a question handled now.
const (
	freezeNone  = iota
	freezeShort // backlog of a short stall: hedge against every other bot
	freezeLong  // backlog of a long freeze: drop
)

func (b *Bot) markFreeze(now time.Time, gap time.Duration) {
	b.lastFreeze.Store(b.mono(now))
	if gap >= b.longFreeze() {
		b.longFrozeAt.Store(b.mono(now))
		b.freezeUntil.Store(b.mono(now.Add(2 * b.cfg.Hedge)))
		b.resumedFlag.Store(true)
	} else {
		b.stallUntil.Store(b.mono(now.Add(b.cfg.Hedge)))
	}
	b.poke()
}

// freezeMode reports whether a question handled now is backlog of a freeze
// and of which kind.
func (b *Bot) freezeMode(now time.Time) int {
	m := b.mono(now)
	if gap := m - b.lastTick.Load(); gap > int64(freezeGap) {
		b.markFreeze(now, time.Duration(gap))
		b.lastTick.Store(m)
	}
	switch {
	case m < b.freezeUntil.Load():
		return freezeLong
	case m < b.stallUntil.Load():
		return freezeShort
	}
	return freezeNone
}

// Stats returns a snapshot of the counters.
func (b *Bot) Stats() Stats {
	return Stats{
		Answers:        b.stats.answers.Load(),
		Hedges:         b.stats.hedges.Load(),
		GuardHits:      b.stats.guard.Load(),
		DroppedStale:   b.stats.stale.Load(),
		DroppedFull:    b.stats.full.Load(),
		DroppedOffline: b.stats.offline.Load(),
		LinesSent:      b.stats.sent.Load(),
		Connects:       b.stats.connects.Load(),
		LagMS:          b.stats.lag.Load(),
		QueueLen:       int64(len(b.ctrlQ) + len(b.msgQ)),
	}
}

// Close sends QUIT, stops Run and all goroutines and waits for them. It is
// safe to call more than once and before Run.
func (b *Bot) Close() error {
	b.runMu.Lock()
	b.closed = true
	cancel, done := b.cancel, b.runDone
	b.runMu.Unlock()
	if cancel != nil {
		cancel()
	}
	if done != nil {
		<-done
	}
	return nil
}
