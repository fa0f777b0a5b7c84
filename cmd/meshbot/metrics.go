package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector reads the libraries' counters at scrape time, so the libraries
// stay free of Prometheus and nothing is counted twice.
type collector struct {
	d *Daemon

	members, roleChanges, failovers, freezes          *prometheus.Desc
	isActive, health                                  *prometheus.Desc
	answers, hedges, guardHits, staleDropped, ircLag  *prometheus.Desc
	ircConnected, linesSent, linesDropped             *prometheus.Desc
	syncRounds, syncBytes, entries, tombstones, snapA *prometheus.Desc
	storeHealthy                                      *prometheus.Desc
}

func newCollector(d *Daemon) *collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("meshbot_"+name, help, labels, prometheus.Labels{"node": d.cfg.Name})
	}
	return &collector{
		d:            d,
		members:      desc("members", "Members of the mesh by gossip status, as this node sees them.", "status"),
		roleChanges:  desc("role_changes_total", "Role changes of any member seen by this node."),
		failovers:    desc("failovers_total", "Changes of the active node away from a live one."),
		freezes:      desc("freezes_total", "Process freezes (e.g. SIGSTOP) this node detected in itself."),
		isActive:     desc("active", "1 if this node is the active node."),
		health:       desc("health", "1 for this node's current health value.", "health"),
		answers:      desc("irc_answers_total", "Factoid answers sent to channels and users."),
		hedges:       desc("irc_hedges_total", "Questions on which this node waited for a higher-ranked bot."),
		guardHits:    desc("irc_guard_hits_total", "Answers suppressed because a higher-ranked bot answered."),
		staleDropped: desc("irc_stale_dropped_total", "Questions dropped as backlog after a freeze."),
		ircLag:       desc("irc_lag_seconds", "IRC lag measured by PING round trip."),
		ircConnected: desc("irc_connected", "1 if connected to an IRC server."),
		linesSent:    desc("irc_lines_sent_total", "Lines written to the IRC server."),
		linesDropped: desc("irc_lines_dropped_total", "Outgoing lines dropped because the send queue was full."),
		syncRounds:   desc("sync_rounds_total", "Anti-entropy rounds completed."),
		syncBytes:    desc("sync_bytes_total", "Anti-entropy bytes by direction.", "direction"),
		entries:      desc("store_entries", "Live records in the replicated store."),
		tombstones:   desc("store_tombstones", "Tombstones waiting for collection."),
		snapA:        desc("snapshot_age_seconds", "Age of the newest known-good snapshot (-1 if none)."),
		storeHealthy: desc("store_healthy", "1 if the store is healthy."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	ms := c.d.mesh.Stats()
	gauge(c.members, float64(ms.Alive), "alive")
	gauge(c.members, float64(ms.Suspect), "suspect")
	gauge(c.members, float64(ms.Dead), "dead")
	gauge(c.members, float64(ms.Left), "left")
	counter(c.roleChanges, float64(ms.RoleChanges))
	counter(c.failovers, float64(ms.Failovers))
	counter(c.freezes, float64(ms.Freezes))
	gauge(c.isActive, b2f(ms.Active == c.d.cfg.Name))
	self := c.d.mesh.Self()
	for _, h := range []string{"ok", "starting", "db-error", "irc-down", "lagged", "leaving"} {
		gauge(c.health, b2f(string(self.Health) == h), h)
	}

	ss := c.d.store.Stats()
	counter(c.syncRounds, float64(ss.SyncRounds))
	counter(c.syncBytes, float64(ss.SyncBytesSent), "sent")
	counter(c.syncBytes, float64(ss.SyncBytesRecv), "received")
	gauge(c.entries, float64(ss.Entries))
	gauge(c.tombstones, float64(ss.Tombstones))
	age := -1.0
	if !ss.LastSnapshot.IsZero() {
		age = time.Since(ss.LastSnapshot).Seconds()
	}
	gauge(c.snapA, age)
	ok, _ := c.d.store.Health()
	gauge(c.storeHealthy, b2f(ok))

	if c.d.bot != nil {
		bs := c.d.bot.Stats()
		counter(c.answers, float64(bs.Answers))
		counter(c.hedges, float64(bs.Hedges))
		counter(c.guardHits, float64(bs.GuardHits))
		counter(c.staleDropped, float64(bs.DroppedStale))
		counter(c.linesSent, float64(bs.LinesSent))
		counter(c.linesDropped, float64(bs.DroppedFull))
		c.d.mu.Lock()
		st := c.d.ircState
		c.d.mu.Unlock()
		gauge(c.ircConnected, b2f(st.Connected))
		gauge(c.ircLag, float64(st.LagMS)/1000)
	}
}

// metricsHandler serves /metrics with meshbot's metrics and the Go runtime's.
func (d *Daemon) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(d), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
