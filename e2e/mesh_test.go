package e2e

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 2: membership and the active node, mesh-only nodes.

func TestMeshFormsWithOneActive(t *testing.T) {
	start := time.Now()
	c := newCluster(t, clusterOpts{n: 3})
	c.waitFormed(30 * time.Second)
	figure(t, "mesh_formed_ms", ms(time.Since(start)))
	for _, n := range c.nodes {
		ms, err := n.members()
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 3 {
			t.Errorf("%s lists %d members, want 3: %s", n.name, len(ms), fmtMembers(ms))
		}
		alive := 0
		for _, m := range ms {
			if m.Status == "alive" {
				alive++
			}
			if m.Self != (m.Name == n.name) {
				t.Errorf("%s: member %s has self=%v", n.name, m.Name, m.Self)
			}
			if m.Role == "active" && m.Rank != 1 {
				t.Errorf("%s: active member %s has rank %d, want 1", n.name, m.Name, m.Rank)
			}
		}
		if alive != 3 {
			t.Errorf("%s sees %d alive, want 3: %s", n.name, alive, fmtMembers(ms))
		}
		if a := actives(ms); !slices.Equal(a, []string{"n1"}) {
			t.Errorf("%s sees active %v, want [n1]", n.name, a)
		}
		s, err := n.status()
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != n.name || s.Active != "n1" {
			t.Errorf("status on %s: name %q active %q, want %q and n1", n.name, s.Name, s.Active, n.name)
		}
	}
}

func TestMeshKillActiveThenPreempt(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3})
	c.waitFormed(30 * time.Second)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	c.age()

	killed := time.Now()
	n1.kill()
	eventually(t, 20*time.Second, 50*time.Millisecond, "survivors name n2 active", func() error {
		for _, n := range []*node{n2, n3} {
			ms, err := n.members()
			if err != nil {
				return err
			}
			if a := actives(ms); !slices.Equal(a, []string{"n2"}) {
				return fmt.Errorf("%s sees active %v: %s", n.name, a, fmtMembers(ms))
			}
		}
		return nil
	})
	figure(t, "mesh_kill_to_failover_ms", ms(time.Since(killed)))

	// Restart n1 with the same data dir. It must stay standby while it has
	// been alive for less than preempt_delay, then take the role back.
	n1.start()
	var aliveAt time.Time
	eventually(t, 30*time.Second, 50*time.Millisecond, "n1 alive again in n2's view", func() error {
		ms, err := n2.members()
		if err != nil {
			return err
		}
		if m := byName(ms)["n1"]; m.Status != "alive" {
			return fmt.Errorf("n2 sees n1 as %q", m.Status)
		}
		aliveAt = time.Now()
		return nil
	})
	var activeAt time.Time
	eventually(t, preemptDelay+30*time.Second, 100*time.Millisecond, "n1 active again everywhere", func() error {
		for _, n := range c.nodes {
			ms, err := n.members()
			if err != nil {
				return err
			}
			a := actives(ms)
			if slices.Contains(a, "n1") && time.Since(aliveAt) < preemptDelay-time.Second {
				t.Errorf("%s shows n1 active %s after it was alive again, before preempt_delay %s: %s",
					n.name, time.Since(aliveAt).Round(time.Millisecond), preemptDelay, fmtMembers(ms))
			}
			if !slices.Equal(a, []string{"n1"}) {
				return fmt.Errorf("%s sees active %v", n.name, a)
			}
		}
		activeAt = time.Now()
		return nil
	})
	held := activeAt.Sub(aliveAt)
	figure(t, "mesh_preempt_after_alive_ms", ms(held))
	if held < preemptDelay-time.Second {
		t.Errorf("n1 took the role back %s after it was alive again; want at least preempt_delay-1s = %s", held, preemptDelay-time.Second)
	}
}

func TestMeshSIGTERMShowsLeft(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3})
	c.waitFormed(30 * time.Second)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	sent := time.Now()
	n1.signal(syscall.SIGTERM)
	seen := map[string]time.Duration{}
	eventually(t, 20*time.Second, 20*time.Millisecond, "others show n1 left", func() error {
		for _, n := range []*node{n2, n3} {
			if _, ok := seen[n.name]; ok {
				continue
			}
			ms, err := n.members()
			if err != nil {
				return err
			}
			m, ok := byName(ms)["n1"]
			if ok && m.Status == "left" {
				seen[n.name] = time.Since(sent)
				continue
			}
			if ok && m.Status == "dead" {
				t.Errorf("%s shows n1 dead, want left after a graceful SIGTERM", n.name)
			}
			return fmt.Errorf("%s shows n1 as %q (present %v)", n.name, m.Status, ok)
		}
		return nil
	})
	worst := max(seen["n2"], seen["n3"])
	figure(t, "mesh_sigterm_to_left_ms", ms(worst))
	if worst > time.Second {
		t.Logf("note: 'left' took %s, more than the ~1s the brief expects", worst)
	}
	code, exited := n1.wait(30 * time.Second)
	if !exited || code != 0 {
		t.Errorf("n1 after SIGTERM: exited %v code %d, want a clean exit 0", exited, code)
	}
	eventually(t, 20*time.Second, 100*time.Millisecond, "n2 active after n1 left", func() error {
		for _, n := range []*node{n2, n3} {
			ms, err := n.members()
			if err != nil {
				return err
			}
			if a := actives(ms); !slices.Equal(a, []string{"n2"}) {
				return fmt.Errorf("%s sees active %v", n.name, a)
			}
		}
		return nil
	})
}

// startFails runs a node that must refuse to start and returns its output.
func startFails(t *testing.T, n *node, timeout time.Duration) (int, string) {
	t.Helper()
	n.start()
	code, exited := n.wait(timeout)
	if !exited {
		n.kill()
		t.Fatalf("%s still running after %s, want it to exit non-zero; log:\n%s", n.name, timeout, n.logTail(20))
	}
	if code == 0 {
		t.Fatalf("%s exited 0, want non-zero; log:\n%s", n.name, n.logTail(20))
	}
	t.Logf("%s: exit %d: %s", n.name, code, strings.TrimSpace(n.logTail(1)))
	return code, n.logText()
}

func TestMeshBadConfig(t *testing.T) {
	dir := tempDir(t)
	goodKey := writeKey(t, dir, "good.key", 32)
	shortKey := filepath.Join(dir, "short.key")
	if err := os.WriteFile(shortKey, []byte(base64.StdEncoding.EncodeToString([]byte("ten bytes!"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(name string) config {
		return config{
			Name: name, Rank: 1,
			Mesh:  meshConfig{Bind: addr(freePort(t)), KeyFile: goodKey, Profile: "fast", Failback: "preempt", PreemptDelay: "5s"},
			Store: storeConfig{SyncInterval: "500ms", SnapshotEvery: "24h", SnapshotKeep: 7},
			Log:   logConfig{Level: "debug"},
		}
	}
	tests := []struct {
		name string
		mod  func(c *config)
		want *regexp.Regexp // must match the output
	}{
		{"unknown key", func(c *config) { c.Extra = "bogus_setting: 1\n" }, regexp.MustCompile(`bogus_setting`)},
		{"unknown nested key", func(c *config) { c.Extra = "control:\n  sockett: /x\n" }, regexp.MustCompile(`sockett`)},
		{"bad duration", func(c *config) { c.Mesh.PreemptDelay = "5 parsecs" }, regexp.MustCompile(`(?i)duration.*5 parsecs|5 parsecs.*duration`)},
		{"missing key file", func(c *config) { c.Mesh.KeyFile = filepath.Join(dir, "no-such.key") }, regexp.MustCompile(`no-such\.key`)},
		{"key of wrong length", func(c *config) { c.Mesh.KeyFile = shortKey }, regexp.MustCompile(`(?i)key.*(16|length|bytes|size)`)},
		{"bad profile", func(c *config) { c.Mesh.Profile = "turbo" }, regexp.MustCompile(`turbo`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base(strings.ReplaceAll(tt.name, " ", "-"))
			tt.mod(&cfg)
			n := newNode(t, dir, cfg)
			_, out := startFails(t, n, 20*time.Second)
			if !tt.want.MatchString(out) {
				t.Errorf("output does not match %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestMeshDuplicateName(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 2})
	c.waitFormed(30 * time.Second)
	// A third process that calls itself n1, with its own port and data dir,
	// started against the mesh.
	cfg := c.nodes[0].cfg
	cfg.DataDir = filepath.Join(c.dir, "dup")
	cfg.Mesh.Bind = addr(freePort(t))
	cfg.Mesh.Join = []string{c.nodes[0].cfg.Mesh.Bind, c.nodes[1].cfg.Mesh.Bind}
	dupDir := filepath.Join(c.dir, "dupcfg")
	if err := os.MkdirAll(dupDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dup := newNode(t, dupDir, cfg)
	code, out := startFails(t, dup, 30*time.Second)
	t.Logf("duplicate name: exit %d, last lines:\n%s", code, dup.logTail(5))
	if !regexp.MustCompile(`(?i)name|conflict|in use|duplicate`).MatchString(out) {
		t.Errorf("duplicate-name exit message does not mention the name conflict:\n%s", dup.logTail(10))
	}
	// The original n1 stays the active node.
	c.waitFormed(20 * time.Second)
}

func TestMeshControlBadToken(t *testing.T) {
	dir := tempDir(t)
	token := filepath.Join(dir, "token")
	wrong := filepath.Join(dir, "wrong-token")
	if err := os.WriteFile(token, []byte("s3cret-token-e2e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctlAddr := addr(freePort(t))
	c := newCluster(t, clusterOpts{n: 1, mod: func(_ int, c *config) {
		c.Control = &controlConfig{Listen: ctlAddr, TokenFile: token}
	}})
	c.waitFormed(30 * time.Second)

	r := runCtl("-addr", ctlAddr, "-token-file", wrong, "status")
	if r.Code != 1 {
		t.Errorf("wrong token: %s; want exit 1", r)
	}
	if !regexp.MustCompile(`(?i)token|unauthori[sz]ed|401`).MatchString(r.Stderr) {
		t.Errorf("wrong token: message does not mention the token: %q", r.Stderr)
	}
	r = runCtl("-addr", ctlAddr, "-token-file", token, "-o", "json", "status")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"n1"`) {
		t.Errorf("right token: %s; want exit 0 and the status of n1", r)
	}
	// Usage errors exit 2.
	for _, args := range [][]string{{"-socket", c.nodes[0].socket}, {"-socket", c.nodes[0].socket, "nosuchcommand"}, {"-addr", ctlAddr, "status"}} {
		if r := runCtl(args...); r.Code != 2 {
			t.Errorf("meshctl %q: %s; want exit 2 (usage)", args, r)
		}
	}
}

func TestMeshDifferentKeysDoNotMerge(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 2, mod: func(i int, c *config) {
		if i == 1 {
			c.Mesh.KeyFile = writeKey(t, filepath.Dir(c.DataDir), "other.key", 32)
		}
	}})
	n1, n2 := c.nodes[0], c.nodes[1]
	// Both must be up (control socket answers) and, for a stretch of several
	// seconds, each must see only itself.
	for _, n := range c.nodes {
		eventually(t, 20*time.Second, 100*time.Millisecond, n.name+" up", func() error {
			_, err := n.members()
			return err
		})
	}
	end := time.Now().Add(6 * time.Second)
	for time.Now().Before(end) {
		for _, n := range c.nodes {
			ms, err := n.members()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if m.Name != n.name && m.Status == "alive" {
					t.Fatalf("%s sees %s alive although their gossip keys differ: %s", n.name, m.Name, fmtMembers(ms))
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	re := regexp.MustCompile(`(?i)decrypt|no installed keys|encryption`)
	eventually(t, 10*time.Second, 200*time.Millisecond, "a log line about decryption", func() error {
		for _, n := range []*node{n1, n2} {
			for _, l := range strings.Split(n.logText(), "\n") {
				if re.MatchString(l) && !strings.Contains(l, "starting meshbot") {
					t.Logf("%s: %s", n.name, l)
					return nil
				}
			}
		}
		return fmt.Errorf("no log line of either node matches %s", re)
	})
}

// runBin runs a binary to completion and returns stdout, stderr and the
// exit code.
func runBin(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = childAttr()
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatalf("run %s %q: %v", bin, args, err)
	return "", "", 0
}

func TestDaemonKeygenVersionUsage(t *testing.T) {
	out, _, code := runBin(t, meshbotBin, "keygen")
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if code != 0 || err != nil || len(key) != 32 {
		t.Errorf("meshbot keygen: exit %d, output %q: want a base64 32-byte key (decode err %v, %d bytes)", code, out, err, len(key))
	}
	out2, _, _ := runBin(t, meshbotBin, "keygen")
	if out2 == out {
		t.Errorf("two keygen runs printed the same key %q", out)
	}
	out, _, code = runBin(t, meshbotBin, "version")
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("meshbot version: exit %d, output %q", code, out)
	}
	for _, args := range [][]string{{}, {"nosuchcommand"}, {"run"}, {"run", "-config"}, {"run", "-bogusflag"}} {
		if _, errOut, code := runBin(t, meshbotBin, args...); code != 2 || strings.TrimSpace(errOut) == "" {
			t.Errorf("meshbot %q: exit %d, stderr %q; want exit 2 with a usage message", args, code, errOut)
		}
	}
	// A key printed by keygen works as a key_file.
	dir := tempDir(t)
	keyFile := filepath.Join(dir, "k")
	if err := os.WriteFile(keyFile, []byte(out2), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{n: 1, mod: func(_ int, c *config) { c.Mesh.KeyFile = keyFile }})
	c.waitFormed(30 * time.Second)
}
