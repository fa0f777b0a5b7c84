package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profiles for Config.Profile.
const (
	ProfileLAN  = "lan"  // memberlist.DefaultLANConfig
	ProfileFast = "fast" // LAN with sub-second probing; for low-RTT networks
	ProfileWAN  = "wan"  // memberlist.DefaultWANConfig
)

// Config configures a Mesh. The zero value of each field is documented; use
// DefaultConfig and change what you need.
type Config struct {
	// Name is this node's unique name in the mesh. Required.
	Name string
	// Rank is the static preference (1 is most preferred; ties by name).
	// Zero is allowed and sorts before 1.
	Rank int
	// BindAddr is "host:port" to listen on; port 0 picks a free port.
	// Ignored when Transport is set. "" = "0.0.0.0:7946".
	BindAddr string
	// AdvertiseAddr is the "host:port" others use to reach us; "" = BindAddr
	// (or what the transport reports).
	AdvertiseAddr string
	// Join lists seed addresses ("host:port"). Empty = start a new mesh
	// (known peers are still tried).
	Join []string
	// Keys is the gossip keyring, first = primary; nil = no encryption.
	// Each key is 16, 24 or 32 bytes (AES-128/192/256).
	Keys [][]byte
	// KeyringFile, if set, is a JSON file holding a list of base64 keys
	// (primary first). It is loaded at start if it exists (overriding Keys)
	// and rewritten after every keyring change. "" = not persisted.
	KeyringFile string
	// KnownPeersFile, if set, is where the addresses of alive members are
	// remembered (JSON) so a restart can rejoin without seeds. "" = off.
	KnownPeersFile string
	// Profile is the failure-detection profile: "lan", "fast" or "wan".
	// "" = "lan".
	Profile string
	// Failback is "preempt" or "sticky". "" = "preempt".
	Failback string
	// PreemptDelay is how long a node must be alive and healthy before it
	// takes the active role from a node that was serving. 0 = no hold-down.
	PreemptDelay time.Duration
	// RetryInterval is how often seeds, known peers and failed members are
	// re-joined. 0 = profile default (lan 5 s, fast 1 s, wan 15 s).
	RetryInterval time.Duration
	// SettleTime is how long a member that comes back from dead or left
	// with an old HealthySince (it was frozen or cut off, not restarted, so
	// it may not know yet that it was gone) is not a candidate, giving it
	// time to notice and publish a new HealthySince. 0 = 2 s.
	SettleTime time.Duration
	// Demotions stores sticky-mode demotions. nil = NewMemDemotions().
	Demotions Demotions
	// Version is published in Meta.Version.
	Version string
	// Logger receives logs; nil = discard. memberlist's own log lines are
	// bridged to it (their DEBUG lines only when Logger has debug enabled).
	Logger *slog.Logger
	// Transport replaces the real network (tests use meshtest.Network).
	// nil = UDP+TCP on BindAddr.
	Transport memberlist.Transport
	// Now is the clock; nil = time.Now.
	Now func() time.Time

	// tune, if set, adjusts the memberlist configuration after the
	// profile is applied (tests only).
	tune func(*memberlist.Config)
}

// DefaultConfig returns a Config with every default filled in. Name must
// still be set.
func DefaultConfig() Config {
	return Config{
		Name:           "",               // must be set by the caller
		Rank:           1,                // most preferred
		BindAddr:       "0.0.0.0:7946",   // memberlist's usual port on all interfaces
		AdvertiseAddr:  "",               // same as bind / as reported by the transport
		Join:           nil,              // no seeds: start a new mesh
		Keys:           nil,              // no encryption
		KeyringFile:    "",               // keyring changes are not persisted
		KnownPeersFile: "",               // peers are not remembered
		Profile:        ProfileLAN,       // memberlist LAN defaults
		Failback:       FailbackPreempt,  // a recovered better node takes over again
		PreemptDelay:   30 * time.Second, // a recovered node waits this long before taking over
		RetryInterval:  0,                // profile default
		Demotions:      nil,              // in-memory demotions
		Version:        "",               // unknown build
		Logger:         nil,              // discard logs
		Transport:      nil,              // real network
		Now:            nil,              // time.Now
	}
}

// Errors returned by this package.
var (
	// ErrBadConfig wraps configuration errors from New.
	ErrBadConfig = errors.New("invalid mesh config")
	// ErrDuplicateName is returned by Start when another node at a different
	// address already uses this node's name.
	ErrDuplicateName = errors.New("node name already in use in the mesh")
	// ErrBadKey reports a key that is not 16, 24 or 32 bytes or is
	// otherwise unusable (e.g. removing the primary key).
	ErrBadKey = errors.New("bad gossip key")
	// ErrNoEncryption is returned by key operations on a mesh that was
	// started without a keyring.
	ErrNoEncryption = errors.New("gossip encryption is not enabled")
	// ErrNotRunning is returned by operations that need a started,
	// not shut down mesh.
	ErrNotRunning = errors.New("mesh is not running")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("mesh already started")
	// ErrUnknownNode is returned by SendTo for a node that is not alive.
	ErrUnknownNode = errors.New("unknown or unreachable node")
	// ErrKeyOp is returned (wrapped, naming the nodes) when a cluster-wide
	// key operation failed on some nodes.
	ErrKeyOp = errors.New("key operation failed on some nodes")
)

// maxNameLen bounds node names so they fit in message envelopes and meta.
const maxNameLen = 128

func validateHostPort(field, s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%w: %s %q: %w", ErrBadConfig, field, s, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%w: %s %q: bad port", ErrBadConfig, field, s)
	}
	return nil
}

// normalize validates cfg and fills in defaults.
func (cfg Config) normalize() (Config, error) {
	if cfg.Name == "" {
		return cfg, fmt.Errorf("%w: name is empty", ErrBadConfig)
	}
	if len(cfg.Name) > maxNameLen {
		return cfg, fmt.Errorf("%w: name longer than %d bytes", ErrBadConfig, maxNameLen)
	}
	if cfg.Rank < -1<<31 || cfg.Rank > 1<<31-1 {
		return cfg, fmt.Errorf("%w: rank %d out of range", ErrBadConfig, cfg.Rank)
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "0.0.0.0:7946"
	}
	if err := validateHostPort("bind address", cfg.BindAddr); err != nil {
		return cfg, err
	}
	if cfg.AdvertiseAddr != "" {
		if err := validateHostPort("advertise address", cfg.AdvertiseAddr); err != nil {
			return cfg, err
		}
	}
	for _, j := range cfg.Join {
		if err := validateHostPort("join address", j); err != nil {
			return cfg, err
		}
	}
	for i, k := range cfg.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return cfg, fmt.Errorf("%w: key %d: %w", ErrBadKey, i, err)
		}
	}
	switch cfg.Profile {
	case "":
		cfg.Profile = ProfileLAN
	case ProfileLAN, ProfileFast, ProfileWAN:
	default:
		return cfg, fmt.Errorf("%w: profile %q (want lan, fast or wan)", ErrBadConfig, cfg.Profile)
	}
	switch cfg.Failback {
	case "":
		cfg.Failback = FailbackPreempt
	case FailbackPreempt, FailbackSticky:
	default:
		return cfg, fmt.Errorf("%w: failback %q (want preempt or sticky)", ErrBadConfig, cfg.Failback)
	}
	if cfg.PreemptDelay < 0 {
		return cfg, fmt.Errorf("%w: negative preempt delay", ErrBadConfig)
	}
	if cfg.SettleTime < 0 {
		return cfg, fmt.Errorf("%w: negative settle time", ErrBadConfig)
	}
	if cfg.SettleTime == 0 {
		cfg.SettleTime = 2 * time.Second
	}
	if cfg.RetryInterval < 0 {
		return cfg, fmt.Errorf("%w: negative retry interval", ErrBadConfig)
	}
	if cfg.RetryInterval == 0 {
		switch cfg.Profile {
		case ProfileFast:
			cfg.RetryInterval = time.Second
		case ProfileWAN:
			cfg.RetryInterval = 15 * time.Second
		default:
			cfg.RetryInterval = 5 * time.Second
		}
	}
	if cfg.Demotions == nil {
		cfg.Demotions = NewMemDemotions()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// memberlistConfig builds the memberlist configuration for the profile.
func memberlistConfig(profile string) *memberlist.Config {
	c := profileConfig(profile)
	// A node that restarts at a new address (new IP or port) may reclaim
	// its name as soon as its old incarnation is dead, instead of waiting
	// until everyone forgot it (GossipToTheDeadTime). Any window here
	// loses the restarted node's alive message until the next push/pull.
	// A name held by a node that is alive still conflicts.
	c.DeadNodeReclaimTime = time.Nanosecond
	return c
}

func profileConfig(profile string) *memberlist.Config {
	switch profile {
	case ProfileWAN:
		return memberlist.DefaultWANConfig()
	case ProfileFast:
		c := memberlist.DefaultLANConfig()
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.SuspicionMult = 2
		c.GossipInterval = 50 * time.Millisecond
		// More retransmits so that a gossip update survives packet loss
		// (the default of 4 lost a join message in field tests).
		c.RetransmitMult = 5
		// Frequent full-state syncs repair anything gossip missed.
		c.PushPullInterval = 5 * time.Second
		c.TCPTimeout = 2 * time.Second
		// A dead node is forgotten (and its name reusable at another
		// address) sooner.
		c.GossipToTheDeadTime = 5 * time.Second
		return c
	default:
		return memberlist.DefaultLANConfig()
	}
}
