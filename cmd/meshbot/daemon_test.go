package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/cmd/internal/cli"
	"github.com/meshbot/meshbot/cmd/internal/ctlapi"
)

// freePort returns a loopback port that is free for both TCP and UDP.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type testNode struct {
	name   string
	sock   string
	cancel context.CancelFunc
	done   chan error
}

// startNode runs a mesh-only daemon in-process.
func startNode(t *testing.T, name string, rank, port int, join []string, keyFile string, mods ...func(*Config)) *testNode {
	t.Helper()
	dir, err := os.MkdirTemp("", "mb") // short: Unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.Rank = rank
	cfg.DataDir = dir
	cfg.Mesh.Bind = fmt.Sprintf("127.0.0.1:%d", port)
	cfg.Mesh.Join = join
	cfg.Mesh.Profile = "fast"
	cfg.Mesh.PreemptDelay = Duration(2 * time.Second)
	cfg.Mesh.KeyFile = keyFile
	cfg.Store.SyncInterval = Duration(200 * time.Millisecond)
	cfg.Store.SnapshotEvery = 0
	cfg.Log.Level = "warn"
	for _, mod := range mods {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger, _ := newLogger(cfg.Log, &syncWriter{w: &logs})
	d, err := NewDaemon(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{name: name, sock: cfg.Control.Socket, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- d.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *testNode) stop(t *testing.T) {
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("node %s: %v", n.name, err)
		}
		n.done <- nil // keep stop idempotent
	case <-time.After(30 * time.Second):
		t.Errorf("node %s did not stop within 30s", n.name)
	}
}

func (n *testNode) ctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cli.Run(ctx, append([]string{"-socket", n.sock}, args...), func(string) string { return "" }, &out, &errb)
	return out.String(), err
}

func (n *testNode) members(t *testing.T) []ctlapi.Member {
	t.Helper()
	out, err := n.ctl(t, "members", "-o", "json")
	if err != nil {
		return nil
	}
	var ms []ctlapi.Member
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("members -o json: %v\n%s", err, out)
	}
	return ms
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func activeOf(ms []ctlapi.Member) (active string, alive int) {
	for _, m := range ms {
		if m.Status == "alive" {
			alive++
		}
		if m.Role == "active" {
			if active != "" {
				return "TWO ACTIVE", alive
			}
			active = m.Name
		}
	}
	return active, alive
}

// TestDaemonsWithMeshctl runs three daemons in-process and drives them with
// meshctl's Run: membership, the active node, replicated factoids, failover.
func TestDaemonsWithMeshctl(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(keyFile, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := []int{freePort(t), freePort(t), freePort(t)}
	seed := []string{fmt.Sprintf("127.0.0.1:%d", ports[0])}
	nodes := []*testNode{startNode(t, "n1", 1, ports[0], nil, keyFile)}
	for i := 1; i < 3; i++ {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i+1), i+1, ports[i], seed, keyFile))
	}
	for _, n := range nodes {
		eventually(t, n.name+" to see 3 alive members and n1 active", 20*time.Second, func() bool {
			active, alive := activeOf(n.members(t))
			return alive == 3 && active == "n1"
		})
	}

	if _, err := nodes[1].ctl(t, "factoid", "set", "ubuntu", "Ubuntu is an operating system"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{nodes[0], nodes[2]} {
		eventually(t, "the factoid to reach "+n.name, 10*time.Second, func() bool {
			out, err := n.ctl(t, "factoid", "get", "ubuntu")
			return err == nil && strings.TrimSpace(out) == "Ubuntu is an operating system"
		})
	}
	if _, err := nodes[0].ctl(t, "factoid", "set", "bad\x00name", "v"); err == nil {
		t.Error("a NUL in a factoid name was accepted")
	}

	// Graceful leave of the active node: the others see it as left and
	// agree on n2.
	nodes[0].stop(t)
	for _, n := range nodes[1:] {
		eventually(t, n.name+" to see n1 left and n2 active", 10*time.Second, func() bool {
			ms := n.members(t)
			active, _ := activeOf(ms)
			for _, m := range ms {
				if m.Name == "n1" && m.Status != "left" {
					return false
				}
			}
			return active == "n2"
		})
	}
	out, err := nodes[2].ctl(t, "events")
	if err != nil || !strings.Contains(out, "n1") {
		t.Errorf("events should mention n1: %v\n%s", err, out)
	}
}

// TestMetricsEndpoint checks that control.metrics_listen serves the
// documented Prometheus metrics.
func TestMetricsEndpoint(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n := startNode(t, "m1", 1, freePort(t), nil, "", func(c *Config) { c.Control.MetricsListen = addr })
	eventually(t, "the node to be active", 20*time.Second, func() bool {
		active, _ := activeOf(n.members(t))
		return active == "m1"
	})
	var body string
	eventually(t, "/metrics to answer", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	for _, want := range []string{
		`meshbot_members{node="m1",status="alive"} 1`,
		`meshbot_active{node="m1"} 1`,
		`meshbot_health{health="ok",node="m1"} 1`,
		`meshbot_role_changes_total{node="m1"}`,
		`meshbot_failovers_total{node="m1"}`,
		`meshbot_sync_rounds_total{node="m1"}`,
		`meshbot_sync_bytes_total{direction="sent",node="m1"}`,
		`meshbot_store_entries{node="m1"}`,
		`meshbot_snapshot_age_seconds{node="m1"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
