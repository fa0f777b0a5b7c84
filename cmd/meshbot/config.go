package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the daemon's configuration file (YAML). Every field has a
// default, set in DefaultConfig; the README's configuration reference is
// kept in sync with this type by a test.
type Config struct {
	Name    string        `yaml:"name"`     // unique in the mesh; default: hostname
	Rank    int           `yaml:"rank"`     // 1 = most preferred; ties broken by name; default 1
	DataDir string        `yaml:"data_dir"` // Badger store, snapshots, known peers, keyring, control socket
	Mesh    MeshConfig    `yaml:"mesh"`
	Control ControlConfig `yaml:"control"`
	IRC     *IRCConfig    `yaml:"irc"`     // absent = mesh-only mode (membership and sync, no IRC)
	Editors []string      `yaml:"editors"` // hostmasks (nick!user@host, * and ?) or account:NAME; local, never synced
	Store   StoreConfig   `yaml:"store"`
	Log     LogConfig     `yaml:"log"`
}

// MeshConfig configures membership (SWIM gossip).
type MeshConfig struct {
	Bind          string   `yaml:"bind"`           // gossip address (UDP and TCP); default 0.0.0.0:7946
	Advertise     string   `yaml:"advertise"`      // address others should use, if not bind; default ""
	Join          []string `yaml:"join"`           // seed peers host:port; default none
	KeyFile       string   `yaml:"key_file"`       // base64 AES key (16, 24 or 32 bytes); "" = no encryption
	Profile       string   `yaml:"profile"`        // failure detection: lan | fast | wan; default lan
	Failback      string   `yaml:"failback"`       // preempt | sticky; default preempt
	PreemptDelay  Duration `yaml:"preempt_delay"`  // how long a recovered node must be healthy before it takes the role back; default 30s
	RetryInterval Duration `yaml:"retry_interval"` // how often seeds, known peers and failed members are re-joined; default 0 = by profile (lan 5s, fast 1s, wan 15s)
}

// ControlConfig configures the control API and metrics.
type ControlConfig struct {
	Socket        string `yaml:"socket"`         // Unix socket (mode 0600); default <data_dir>/meshbot.sock
	Listen        string `yaml:"listen"`         // optional TCP address for remote meshctl; default "" (off)
	TokenFile     string `yaml:"token_file"`     // bearer token file, required when listen is set
	MetricsListen string `yaml:"metrics_listen"` // optional address for Prometheus /metrics; default "" (off)
}

// IRCConfig configures the IRC side. Its presence turns the bot on.
type IRCConfig struct {
	Servers          []string `yaml:"servers"`            // host:port, tried in order; required
	TLS              bool     `yaml:"tls"`                // default false
	TLSInsecure      bool     `yaml:"tls_insecure"`       // skip certificate verification (tests only); default false
	Nick             string   `yaml:"nick"`               // this node's own nick; default: name
	SASLUser         string   `yaml:"sasl_user"`          // SASL PLAIN account; default "" (no SASL)
	SASLPasswordFile string   `yaml:"sasl_password_file"` // file holding the SASL password
	BotChannel       string   `yaml:"bot_channel"`        // every node sits here; required
	Channels         []string `yaml:"channels"`           // seeds the replicated channel list; default none
	RelayChannel     string   `yaml:"relay_channel"`      // edit requests and alerts; default: bot_channel
	Prefix           string   `yaml:"prefix"`             // command prefix; default "!"
	Hedge            Duration `yaml:"hedge"`              // wait for a higher-ranked bot's answer; default 1500ms
	HotStandby       bool     `yaml:"hot_standby"`        // next node sits silently in all channels; default false
	LagLimit         Duration `yaml:"lag_limit"`          // lag beyond this makes the node unhealthy; default 10s
	PingInterval     Duration `yaml:"ping_interval"`      // lag measurement period; default 5s
	HandoffTimeout   Duration `yaml:"handoff_timeout"`    // on SIGTERM, wait this long for the successor; default 10s
}

// StoreConfig configures the replicated store.
type StoreConfig struct {
	SnapshotEvery Duration `yaml:"snapshot_every"` // backup period; 0 = no scheduled snapshots; default 24h
	SnapshotKeep  int      `yaml:"snapshot_keep"`  // snapshots kept; default 7
	SyncInterval  Duration `yaml:"sync_interval"`  // anti-entropy period; default 2s
}

// LogConfig configures logging to stderr.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error; default info
	Format string `yaml:"format"` // text | json; default text
}

// DefaultConfig returns the configuration used for every key the file does
// not set.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:    host,               // the machine's hostname
		Rank:    1,                  // most preferred; set distinct ranks on every node
		DataDir: "/var/lib/meshbot", // the systemd unit's StateDirectory
		Mesh: MeshConfig{
			Bind:         "0.0.0.0:7946",             // memberlist's default port
			Profile:      "lan",                      // memberlist's LAN defaults
			Failback:     "preempt",                  // recovered higher-ranked nodes take the role back
			PreemptDelay: Duration(30 * time.Second), // hold-down against flapping
		},
		Store: StoreConfig{
			SnapshotEvery: Duration(24 * time.Hour), // daily
			SnapshotKeep:  7,                        // a week of daily snapshots
			SyncInterval:  Duration(2 * time.Second),
		},
		Log: LogConfig{Level: "info", Format: "text"},
	}
}

// defaultIRC fills the IRC defaults; called only when an irc section exists.
func defaultIRC(c *IRCConfig, name string) {
	if c.Nick == "" {
		c.Nick = name
	}
	if c.RelayChannel == "" {
		c.RelayChannel = c.BotChannel
	}
	if c.Prefix == "" {
		c.Prefix = "!"
	}
	if c.Hedge == 0 {
		c.Hedge = Duration(1500 * time.Millisecond)
	}
	if c.LagLimit == 0 {
		c.LagLimit = Duration(10 * time.Second)
	}
	if c.PingInterval == 0 {
		c.PingInterval = Duration(5 * time.Second)
	}
	if c.HandoffTimeout == 0 {
		c.HandoffTimeout = Duration(10 * time.Second)
	}
}

// Duration is a time.Duration written as "1500ms", "30s", "24h".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string and says where a bad one is.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 30s or 1500ms", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q (use a number with a unit: 1500ms, 30s, 24h)", n.Line, n.Value)
	}
	if v < 0 {
		return fmt.Errorf("line %d: negative duration %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

var yamlTypeSection = map[string]string{
	"Config": "top level", "MeshConfig": "section mesh", "ControlConfig": "section control",
	"IRCConfig": "section irc", "StoreConfig": "section store", "LogConfig": "section log",
}

var unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type main\.(\w+)`)

// LoadConfig reads the YAML file at path over DefaultConfig. Unknown keys,
// bad durations and bad values are errors naming the key.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := parseConfig(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func parseConfig(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file means all defaults
		}
		msg := unknownFieldRE.ReplaceAllStringFunc(err.Error(), func(s string) string {
			m := unknownFieldRE.FindStringSubmatch(s)
			return fmt.Sprintf("unknown key %q in %s", m[1], yamlTypeSection[m[2]])
		})
		msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
		msg = strings.TrimPrefix(msg, "yaml: ")
		return errors.New(quoteLines(msg, data))
	}
	return nil
}

var lineRE = regexp.MustCompile(`line (\d+):`)

// quoteLines adds the text of the offending line to "line N:" in msg, so
// that an error such as a wrong type names the key.
func quoteLines(msg string, data []byte) string {
	lines := strings.Split(string(data), "\n")
	return lineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(lineRE.FindStringSubmatch(m)[1])
		if n < 1 || n > len(lines) {
			return m
		}
		return fmt.Sprintf("line %d (%s):", n, strings.TrimSpace(lines[n-1]))
	})
}

// Flags are the command-line overrides of `meshbot run`.
type Flags struct {
	Config, Name, Bind, Join, Data, Socket string
	Rank                                   int
}

// Apply overrides cfg with the flags that were set.
func (f Flags) Apply(cfg *Config) {
	if f.Name != "" {
		cfg.Name = f.Name
	}
	if f.Rank != 0 {
		cfg.Rank = f.Rank
	}
	if f.Bind != "" {
		cfg.Mesh.Bind = f.Bind
	}
	if f.Join != "" {
		cfg.Mesh.Join = nil
		for _, j := range strings.Split(f.Join, ",") {
			if j = strings.TrimSpace(j); j != "" {
				cfg.Mesh.Join = append(cfg.Mesh.Join, j)
			}
		}
	}
	if f.Data != "" {
		cfg.DataDir = f.Data
	}
	if f.Socket != "" {
		cfg.Control.Socket = f.Socket
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks cfg and fills the defaults that depend on other keys.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !nameRE.MatchString(c.Name) {
		bad("name %q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Name)
	}
	if c.Rank < 1 {
		bad("rank %d: want 1 or more (1 = most preferred)", c.Rank)
	}
	if c.DataDir == "" {
		bad("data_dir is empty")
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if err := checkHostPort(c.Mesh.Bind, true); err != nil {
		bad("mesh.bind %q: %v", c.Mesh.Bind, err)
	}
	if c.Mesh.Advertise != "" {
		if err := checkHostPort(c.Mesh.Advertise, false); err != nil {
			bad("mesh.advertise %q: %v", c.Mesh.Advertise, err)
		}
	}
	for _, j := range c.Mesh.Join {
		if err := checkHostPort(j, false); err != nil {
			bad("mesh.join %q: %v", j, err)
		}
	}
	switch c.Mesh.Profile {
	case "lan", "fast", "wan":
	default:
		bad("mesh.profile %q: want lan, fast or wan", c.Mesh.Profile)
	}
	switch c.Mesh.Failback {
	case "preempt", "sticky":
	default:
		bad("mesh.failback %q: want preempt or sticky", c.Mesh.Failback)
	}
	if c.Control.Socket == "" {
		c.Control.Socket = filepath.Join(c.DataDir, "meshbot.sock")
	}
	if c.Control.Listen != "" {
		if err := checkHostPort(c.Control.Listen, true); err != nil {
			bad("control.listen %q: %v", c.Control.Listen, err)
		}
		if c.Control.TokenFile == "" {
			bad("control.listen is set but control.token_file is empty: remote meshctl needs a bearer token")
		}
	}
	if c.Control.MetricsListen != "" {
		if err := checkHostPort(c.Control.MetricsListen, true); err != nil {
			bad("control.metrics_listen %q: %v", c.Control.MetricsListen, err)
		}
	}
	if c.Store.SnapshotKeep < 1 {
		bad("store.snapshot_keep %d: want 1 or more", c.Store.SnapshotKeep)
	}
	if c.Store.SyncInterval.D() < 10*time.Millisecond {
		bad("store.sync_interval %s: want at least 10ms", c.Store.SyncInterval.D())
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format %q: want text or json", c.Log.Format)
	}
	if irc := c.IRC; irc != nil {
		defaultIRC(irc, c.Name)
		if len(irc.Servers) == 0 {
			bad("irc.servers is empty: list at least one host:port (or remove the irc section for mesh-only mode)")
		}
		for _, s := range irc.Servers {
			if err := checkHostPort(s, false); err != nil {
				bad("irc.servers %q: %v", s, err)
			}
		}
		if irc.BotChannel == "" {
			bad("irc.bot_channel is empty: every node must sit in a bot channel")
		}
		if irc.SASLUser != "" && irc.SASLPasswordFile == "" {
			bad("irc.sasl_user is set but irc.sasl_password_file is empty")
		}
	}
	return errors.Join(errs...)
}

func checkHostPort(s string, allowZero bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	_ = host
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || (p == 0 && !allowZero) {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
