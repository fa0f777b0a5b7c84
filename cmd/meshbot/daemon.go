package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/meshbot/meshbot/bot"
	"github.com/meshbot/meshbot/cmd/internal/ctlapi"
	"github.com/meshbot/meshbot/kvsync"
	"github.com/meshbot/meshbot/mesh"
)

// shutdownTimeout bounds the whole graceful shutdown; IRC handoff gets its
// own (shorter) irc.handoff_timeout inside it.
const shutdownTimeout = 20 * time.Second

// Daemon wires the libraries together: the store, the mesh, the bot, the
// control API and the metrics endpoint.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	keys    [][]byte
	token   string
	saslPwd string
	started time.Time

	store *kvsync.Store
	mesh  *mesh.Mesh
	bot   *bot.Bot // nil in mesh-only mode

	mu       sync.Mutex
	ircState bot.State
	leaving  bool

	pubMu      sync.Mutex    // serialises health publication (refreshHealth)
	healthKick chan struct{} // wakes healthLoop; buffered 1
}

func newLogger(c LogConfig, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level %q: %w", c.Level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// readSecret reads a one-line secret file (key, token, password).
func readSecret(what, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: file %s is empty", what, path)
	}
	return s, nil
}

// NewDaemon checks everything that can be checked before touching the
// network: key, token and password files, the data directory.
func NewDaemon(cfg Config, logger *slog.Logger) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: logger, started: time.Now(), healthKick: make(chan struct{}, 1)}
	if cfg.Mesh.KeyFile != "" {
		s, err := readSecret("mesh.key_file", cfg.Mesh.KeyFile)
		if err != nil {
			return nil, err
		}
		key, err := ctlapi.DecodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("mesh.key_file %s: %w", cfg.Mesh.KeyFile, err)
		}
		d.keys = [][]byte{key}
	}
	if cfg.Control.Listen != "" {
		tok, err := readSecret("control.token_file", cfg.Control.TokenFile)
		if err != nil {
			return nil, err
		}
		d.token = tok
	}
	if cfg.IRC != nil && cfg.IRC.SASLPasswordFile != "" {
		pw, err := readSecret("irc.sasl_password_file", cfg.IRC.SASLPasswordFile)
		if err != nil {
			return nil, err
		}
		d.saslPwd = pw
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	return d, nil
}

// Run starts the node and blocks until ctx is cancelled, then shuts down
// gracefully within shutdownTimeout.
func (d *Daemon) Run(ctx context.Context) (err error) {
	cfg := d.cfg
	log := d.log
	log.Info("starting meshbot", "name", cfg.Name, "rank", cfg.Rank, "version", Version(),
		"data_dir", cfg.DataDir, "profile", cfg.Mesh.Profile, "failback", cfg.Mesh.Failback,
		"irc", cfg.IRC != nil, "encrypted", len(d.keys) > 0)

	ctlLn, err := listenControlSocket(cfg.Control.Socket)
	if err != nil {
		return err
	}
	defer ctlLn.Close()

	// Store first: the mesh publishes its stats and replicates its demotions.
	scfg := kvsync.DefaultConfig()
	scfg.Dir = cfg.DataDir
	scfg.Node = cfg.Name
	scfg.SyncInterval = cfg.Store.SyncInterval.D()
	scfg.SnapshotEvery = cfg.Store.SnapshotEvery.D()
	scfg.SnapshotKeep = cfg.Store.SnapshotKeep
	scfg.Logger = log
	scfg.OnHealth = d.onStoreHealth
	store, err := kvsync.Open(scfg)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	d.store = store
	defer store.Close()

	mcfg := mesh.DefaultConfig()
	mcfg.Name = cfg.Name
	mcfg.Rank = cfg.Rank
	mcfg.BindAddr = cfg.Mesh.Bind
	mcfg.AdvertiseAddr = cfg.Mesh.Advertise
	mcfg.Join = cfg.Mesh.Join
	mcfg.Keys = d.keys
	if len(d.keys) > 0 {
		mcfg.KeyringFile = filepath.Join(cfg.DataDir, "keyring.json")
	}
	mcfg.KnownPeersFile = filepath.Join(cfg.DataDir, "peers.json")
	mcfg.Profile = cfg.Mesh.Profile
	mcfg.Failback = cfg.Mesh.Failback
	mcfg.PreemptDelay = cfg.Mesh.PreemptDelay.D()
	if cfg.Mesh.RetryInterval != 0 {
		mcfg.RetryInterval = cfg.Mesh.RetryInterval.D()
	}
	mcfg.Demotions = demotions{store}
	mcfg.Version = Version()
	mcfg.Logger = log
	m, err := mesh.New(mcfg)
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	d.mesh = m
	m.UpdateMeta(func(meta *mesh.Meta) {
		meta.Health = d.healthLocked(true)
		d.fillStoreMeta(meta)
	})
	m.SetHandler(store.HandleMessage)
	store.SetTransport(m)
	if err := m.Start(); err != nil {
		return fmt.Errorf("join mesh: %w", err)
	}
	defer m.Shutdown()
	store.Start()

	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, stopWorkers := context.WithCancel(context.Background())
	defer stopWorkers()

	if cfg.IRC != nil {
		b, err := d.newBot()
		if err != nil {
			return err
		}
		d.bot = b
		defer b.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Run(runCtx); err != nil {
				log.Error("irc loop stopped", "err", err)
			}
		}()
	}
	d.refreshHealth()

	// React to replicated-state changes.
	cancelSub := store.Subscribe(func(keyspace string) {
		switch keyspace {
		case "demotions":
			m.Recompute()
		case "channels":
			if d.bot != nil {
				d.bot.ChannelsChanged()
			}
		}
	})
	defer cancelSub()

	wg.Add(3)
	go func() { defer wg.Done(); d.healthLoop(runCtx) }()
	go func() { defer wg.Done(); d.watchMesh(runCtx) }()
	go func() { defer wg.Done(); d.publishStats(runCtx) }()
	if cfg.IRC != nil && len(cfg.IRC.Channels) > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); d.seedChannels(runCtx) }()
	}

	// Control API.
	api := ctlapi.NewHandler(&backend{d: d}, "")
	servers := []*http.Server{{Handler: api, ReadHeaderTimeout: 10 * time.Second}}
	serve := func(srv *http.Server, ln net.Listener, what string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(what+" server stopped", "err", err)
			}
		}()
	}
	serve(servers[0], ctlLn, "control socket")
	log.Info("control API listening", "socket", cfg.Control.Socket)
	if cfg.Control.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Control.Listen)
		if err != nil {
			return fmt.Errorf("control.listen: %w", err)
		}
		srv := &http.Server{Handler: ctlapi.NewHandler(&backend{d: d}, d.token), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		serve(srv, ln, "control TCP")
		log.Info("control API listening", "addr", ln.Addr().String())
	}
	if cfg.Control.MetricsListen != "" {
		ln, err := net.Listen("tcp", cfg.Control.MetricsListen)
		if err != nil {
			return fmt.Errorf("control.metrics_listen: %w", err)
		}
		srv := &http.Server{Handler: d.metricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		serve(srv, ln, "metrics")
		log.Info("metrics listening", "addr", ln.Addr().String())
	}

	<-ctx.Done()
	log.Info("shutting down", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	d.shutdown(sctx)
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
	stopWorkers()
	return nil
}

// shutdown is the graceful part: announce leaving, hand IRC over, leave the
// mesh. Deferred calls close the store and stop the memberlist.
func (d *Daemon) shutdown(ctx context.Context) {
	d.mu.Lock()
	d.leaving = true
	d.mu.Unlock()
	d.refreshHealth()
	if d.bot != nil {
		hctx, cancel := context.WithTimeout(ctx, d.cfg.IRC.HandoffTimeout.D()+2*time.Second)
		if err := d.bot.Handoff(hctx); err != nil {
			d.log.Warn("irc handoff incomplete", "err", err)
		}
		cancel()
	}
	if err := d.mesh.Leave(3 * time.Second); err != nil {
		d.log.Warn("leave mesh", "err", err)
	}
	d.log.Info("left the mesh")
}

func listenControlSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use: another meshbot runs with this data_dir or socket", path)
	}
	_ = os.Remove(path) // stale socket of a crashed process
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// onStoreHealth is kvsync's health callback; it must not block.
func (d *Daemon) onStoreHealth(ok bool, reason string) {
	if !ok {
		d.log.Error("store unhealthy: stepping down", "reason", reason)
		if d.bot != nil {
			d.bot.Announce("database error on " + d.cfg.Name + ": " + reason + " - stepping down, restoring from snapshot")
		}
	} else {
		d.log.Info("store healthy again")
	}
	d.kickHealth()
}

// kickHealth asks healthLoop to republish health; it never blocks.
func (d *Daemon) kickHealth() {
	select {
	case d.healthKick <- struct{}{}:
	default:
	}
}

// healthLoop republishes health whenever a part of the node changed.
func (d *Daemon) healthLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.healthKick:
			d.refreshHealth()
		}
	}
}

// healthLocked computes this node's health from its parts.
func (d *Daemon) healthLocked(starting bool) mesh.Health {
	if d.leaving {
		return mesh.HealthLeaving
	}
	if d.store != nil {
		if ok, _ := d.store.Health(); !ok {
			return mesh.HealthDBError
		}
	}
	if d.cfg.IRC != nil {
		if starting {
			return mesh.HealthStarting
		}
		if !d.ircState.Connected {
			return mesh.HealthIRCDown
		}
		if !d.ircState.Healthy {
			if d.ircState.Reason == "lagged" {
				return mesh.HealthLagged
			}
			return mesh.HealthIRCDown
		}
	}
	return mesh.HealthOK
}

// refreshHealth publishes the current health and IRC state in gossip.
func (d *Daemon) refreshHealth() {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	d.mu.Lock()
	h := d.healthLocked(false)
	st := d.ircState
	d.mu.Unlock()
	d.mesh.UpdateMeta(func(meta *mesh.Meta) {
		meta.Health = h
		meta.IRCConnected = st.Connected
		meta.IRCServer = st.Server
		meta.Nick = st.Nick
		meta.LagMS = st.LagMS
	})
}

func (d *Daemon) fillStoreMeta(meta *mesh.Meta) {
	st := d.store.Stats()
	meta.Entries = st.Entries
	meta.Digest = st.Digest
}

// publishStats keeps the store's entry count and digest in gossip current.
func (d *Daemon) publishStats(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last kvsync.Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := d.store.Stats()
		if st.Entries == last.Entries && st.Digest == last.Digest {
			continue
		}
		last = st
		d.mesh.UpdateMeta(func(meta *mesh.Meta) {
			meta.Entries = st.Entries
			meta.Digest = st.Digest
		})
	}
}

// watchMesh forwards membership and role changes to the bot and logs role
// changes of this node.
func (d *Daemon) watchMesh(ctx context.Context) {
	ch, cancel := d.mesh.Subscribe()
	defer cancel()
	lastRole := mesh.Role("")
	known := map[string]bool{}
	update := func() {
		// A peer that (re)appears gets an anti-entropy round right away, so
		// a restarted or healed node catches up without waiting a period.
		now := map[string]bool{}
		for _, p := range d.mesh.Peers() {
			now[p] = true
			if !known[p] {
				d.store.SyncNow(p)
			}
		}
		known = now
		self := d.mesh.Self()
		if self.Role != lastRole {
			d.log.Info("role changed", "from", string(lastRole), "to", string(self.Role), "active", d.mesh.Active())
			lastRole = self.Role
		}
		if d.bot != nil {
			d.bot.SetView(d.view())
		}
	}
	update()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			update()
		}
	}
}

// seedChannels adds the configured channels to the replicated channel list
// when that list is empty once the node has had a chance to sync with its
// peers, so a channel removed mesh-wide is not brought back by a restart.
func (d *Daemon) seedChannels(ctx context.Context) {
	deadline := time.NewTimer(3 * d.cfg.Store.SyncInterval.D())
	defer deadline.Stop()
	select {
	case <-ctx.Done():
		return
	case <-deadline.C:
	}
	chs, err := d.store.Channels()
	if err != nil || len(chs) > 0 {
		return
	}
	for _, c := range d.cfg.IRC.Channels {
		if err := d.store.AddChannel(c); err != nil {
			d.log.Error("seed channel list", "channel", c, "err", err)
		}
	}
	d.log.Info("seeded the replicated channel list", "channels", d.cfg.IRC.Channels)
}
