package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 3: the replicated factoid store, mesh-only nodes.

func TestSyncSetVisibleOnOthers(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3})
	c.waitFormed(30 * time.Second)
	var lat []time.Duration
	for i := range 10 {
		w := c.nodes[i%3]
		val := fmt.Sprintf("value %d from %s", i, w.name)
		w.set("latency", val)
		written := time.Now()
		var readers []*node
		for _, n := range c.nodes {
			if n != w {
				readers = append(readers, n)
			}
		}
		eventually(t, 20*time.Second, 10*time.Millisecond, "edit visible on the other nodes", func() error {
			for _, n := range readers {
				v, ok, err := n.get("latency")
				if err != nil {
					return err
				}
				if !ok || v != val {
					return fmt.Errorf("%s has %q (found %v), want %q", n.name, v, ok, val)
				}
			}
			return nil
		})
		lat = append(lat, time.Since(written))
	}
	t.Logf("edit-to-visible-on-both latencies: %v", lat)
	figure(t, "sync_set_visible_median_ms", ms(median(lat)))
	figure(t, "sync_set_visible_max_ms", ms(slicesMax(lat)))
	c.waitConverged(20 * time.Second)
}

func slicesMax(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func TestSyncStoppedNodeCatchesUp(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3})
	c.waitFormed(30 * time.Second)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	for i := range 20 {
		n1.set(fmt.Sprintf("old%02d", i), fmt.Sprintf("old value %d", i))
	}
	c.waitConverged(30 * time.Second)

	n3.terminate()
	// 320 edits and 30 forgets while n3 is down, on both remaining nodes.
	const edits = 320
	err := parallelDo(edits, 4, func(i int) error {
		w := []*node{n1, n2}[i%2]
		if r := w.ctl("factoid", "set", fmt.Sprintf("new%03d", i), fmt.Sprintf("new value %d", i)); r.Code != 0 {
			return fmt.Errorf("set new%03d on %s: %s", i, w.name, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	forgotten := map[string]bool{}
	for i := range 10 {
		name := fmt.Sprintf("old%02d", i)
		n1.mustCtl("factoid", "forget", name)
		forgotten[name] = true
	}
	for i := range 20 {
		name := fmt.Sprintf("new%03d", i*7)
		n2.mustCtl("factoid", "forget", name)
		forgotten[name] = true
	}
	// Overwrite some values too.
	for i := range 10 {
		n1.set(fmt.Sprintf("new%03d", 300+i), fmt.Sprintf("rewritten %d", i))
	}
	c.waitConverged(30*time.Second, n1, n2)

	restarted := time.Now()
	n3.start()
	digest := c.waitConverged(60 * time.Second)
	figure(t, "sync_catchup_350_edits_ms", ms(time.Since(restarted)))
	t.Logf("converged digest %s", digest)

	want := map[string]string{}
	for i := range 20 {
		want[fmt.Sprintf("old%02d", i)] = fmt.Sprintf("old value %d", i)
	}
	for i := range edits {
		want[fmt.Sprintf("new%03d", i)] = fmt.Sprintf("new value %d", i)
	}
	for i := range 10 {
		want[fmt.Sprintf("new%03d", 300+i)] = fmt.Sprintf("rewritten %d", i)
	}
	var mu sync.Mutex
	var bad []string
	names := slices.Sorted(maps.Keys(want))
	err = parallelDo(len(names), 4, func(i int) error {
		name := names[i]
		v, ok, err := n3.get(name)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case forgotten[name] && ok:
			bad = append(bad, fmt.Sprintf("%s: forgotten on the others but n3 has %q", name, v))
		case !forgotten[name] && (!ok || v != want[name]):
			bad = append(bad, fmt.Sprintf("%s: n3 has %q (found %v), want %q", name, v, ok, want[name]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("%d factoids wrong on n3 after catch-up, e.g. %q", len(bad), bad[:min(10, len(bad))])
	}
}

func TestSyncConcurrentWritesConverge(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3})
	c.waitFormed(30 * time.Second)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	written := map[string]bool{}
	for round := range 15 {
		key := fmt.Sprintf("race%02d", round%5)
		v1 := fmt.Sprintf("from n1 round %d", round)
		v2 := fmt.Sprintf("from n2 round %d", round)
		written[v1], written[v2] = true, true
		var wg sync.WaitGroup
		var r1, r2 ctlResult
		wg.Add(2)
		go func() { defer wg.Done(); r1 = n1.ctl("factoid", "set", key, v1) }()
		go func() { defer wg.Done(); r2 = n2.ctl("factoid", "set", key, v2) }()
		wg.Wait()
		if r1.Code != 0 || r2.Code != 0 {
			t.Fatalf("concurrent set: n1 %s; n2 %s", r1, r2)
		}
	}
	c.waitConverged(30 * time.Second)
	for i := range 5 {
		key := fmt.Sprintf("race%02d", i)
		var vals []string
		for _, n := range []*node{n1, n2, n3} {
			v, ok, err := n.get(key)
			if err != nil || !ok {
				t.Fatalf("get %s on %s: found %v err %v", key, n.name, ok, err)
			}
			vals = append(vals, v)
		}
		if vals[0] != vals[1] || vals[1] != vals[2] {
			t.Errorf("%s differs across nodes after convergence: %q", key, vals)
		}
		if !written[vals[0]] {
			t.Errorf("%s = %q, which nobody wrote", key, vals[0])
		}
	}
}

func TestSyncCorruptDatabaseRecovers(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3})
	c.waitFormed(30 * time.Second)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	acked := map[string]string{}
	setAck := func(n *node, name, val string) {
		t.Helper()
		n.set(name, val)
		acked[name] = val
	}
	for i := range 30 {
		setAck([]*node{n1, n2, n3}[i%3], fmt.Sprintf("before%02d", i), fmt.Sprintf("before snapshot %d", i))
	}
	c.waitConverged(30 * time.Second)
	snap := n3.mustCtl("snapshot", "create")
	t.Logf("snapshot on n3: %s", strings.TrimSpace(snap))
	list := n3.mustCtl("-o", "json", "snapshot", "list")
	if !strings.Contains(list, `"verified": true`) {
		t.Errorf("snapshot list after create shows no verified snapshot: %s", list)
	}
	for i := range 20 {
		setAck([]*node{n1, n2, n3}[i%3], fmt.Sprintf("after%02d", i), fmt.Sprintf("after snapshot %d", i))
	}
	c.waitConverged(30 * time.Second)

	n3.terminate()
	for i := range 20 {
		setAck([]*node{n1, n2}[i%2], fmt.Sprintf("down%02d", i), fmt.Sprintf("while n3 was down %d", i))
	}
	corrupted := corruptBadger(t, filepath.Join(n3.cfg.DataDir, "db"))
	t.Logf("corrupted %d files in n3's db: %v", len(corrupted), corrupted)
	logBefore := len(n3.logText())

	n3.start()
	// Watch for a visible sign of the error and the restore while waiting
	// for convergence.
	var (
		sawUnhealthy, sawRestoreEvent string
		converged                     bool
		digest                        string
	)
	restoreRE := regexp.MustCompile(`(?i)restor`)
	eventually(t, 90*time.Second, 100*time.Millisecond, "corrupted n3 recovers and converges", func() error {
		if !n3.running() {
			t.Fatalf("n3 exited after its database was corrupted; log:\n%s", n3.logTail(30))
		}
		if s, err := n3.status(); err == nil && sawUnhealthy == "" && (!s.Store.Healthy || s.Health == "db-error") {
			sawUnhealthy = fmt.Sprintf("status health=%s store.healthy=%v reason=%q", s.Health, s.Store.Healthy, s.Store.Reason)
		}
		for _, n := range []*node{n1, n2} {
			if ms, err := n.members(); err == nil && sawUnhealthy == "" {
				if m := byName(ms)["n3"]; m.Health == "db-error" {
					sawUnhealthy = n.name + " saw n3 health db-error"
				}
			}
		}
		if sawRestoreEvent == "" {
			if r := n3.ctl("-o", "json", "events", "-n", "200"); r.Code == 0 && restoreRE.MatchString(r.Stdout) {
				sawRestoreEvent = "events mention restore"
			}
		}
		d, err := c.digests()
		if err != nil {
			return err
		}
		if d["n1"] == "" || d["n1"] != d["n2"] || d["n2"] != d["n3"] {
			return fmt.Errorf("digests %v", d)
		}
		digest, converged = d["n1"], true
		return nil
	})
	logAfter := n3.logText()[logBefore:]
	var logLine string
	for _, l := range strings.Split(logAfter, "\n") {
		if restoreRE.MatchString(l) || strings.Contains(l, "db-error") || strings.Contains(l, "unhealthy") {
			logLine = l
			break
		}
	}
	t.Logf("signs of the error: unhealthy=%q events=%q log=%q", sawUnhealthy, sawRestoreEvent, logLine)
	if sawUnhealthy == "" && sawRestoreEvent == "" && logLine == "" {
		t.Errorf("n3 recovered from a corrupted database without any visible sign (no db-error/unhealthy status, no restore event or log line)")
	}
	if converged {
		t.Logf("converged digest %s", digest)
	}
	c.waitConverged(30 * time.Second)
	var missing []string
	for name, val := range acked {
		v, ok, err := n3.get(name)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || v != val {
			missing = append(missing, fmt.Sprintf("%s=%q(found %v)", name, v, ok))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged edits wrong on n3 after recovery: %v", len(missing), missing)
	}
}

// corruptBadger overwrites MANIFEST and every .sst and .vlog file under dir
// with random bytes of the same size (at least 4 KiB).
func corruptBadger(t *testing.T, dir string) []string {
	t.Helper()
	var done []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		base := filepath.Base(p)
		if base != "MANIFEST" && !strings.HasSuffix(base, ".sst") && !strings.HasSuffix(base, ".vlog") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size := min(max(fi.Size(), 4096), 8<<20)
		junk := make([]byte, size)
		if _, err := rand.Read(junk); err != nil {
			return err
		}
		if err := os.WriteFile(p, junk, 0o644); err != nil {
			return err
		}
		done = append(done, base)
		return nil
	})
	if err != nil {
		t.Fatalf("corrupt %s: %v", dir, err)
	}
	if len(done) == 0 {
		t.Fatalf("no MANIFEST/.sst/.vlog in %s: is DATA/db the Badger directory?", dir)
	}
	return done
}

func TestSyncBadFactoidInput(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 1})
	c.waitFormed(30 * time.Second)
	n := c.nodes[0]
	n.set("existing", "a value")
	before, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, factoid, value string
	}{
		{"empty name", "", "value"},
		{"300-byte name", strings.Repeat("n", 300), "value"},
		{"invalid UTF-8 name", "bad\xff\xfename", "value"},
		{"invalid UTF-8 value", "goodname", "bad\xff\xfevalue"},
		{"CR LF in value", "crlf", "a\r\nPRIVMSG #test :pwned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := n.ctl("factoid", "set", tt.factoid, tt.value)
			if r.Code != 1 {
				t.Errorf("set %q = %q: %s; want exit 1", tt.factoid, tt.value, r)
			}
			if strings.TrimSpace(r.Stderr) == "" {
				t.Errorf("set %q: no error message", tt.factoid)
			}
			t.Logf("message: %s", strings.TrimSpace(r.Stderr))
		})
	}
	// NUL cannot travel in argv; send it to the control API directly.
	for _, tt := range []struct{ name, factoid, value string }{
		{"NUL in name", "nul\x00name", "value"},
		{"NUL in value", "nulvalue", "a\x00b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := putFactoid(t, n.socket, tt.factoid, tt.value)
			if code != http.StatusBadRequest {
				t.Errorf("PUT %q = %q: HTTP %d %s; want 400", tt.factoid, tt.value, code, body)
			}
			t.Logf("message: HTTP %d %s", code, strings.TrimSpace(body))
		})
	}
	// Nothing was written.
	time.Sleep(1500 * time.Millisecond) // publishStats refreshes every 1s
	after, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	if after.Store.Digest != before.Store.Digest || after.Store.Entries != before.Store.Entries {
		t.Errorf("store changed by refused writes: entries %d -> %d, digest %s -> %s",
			before.Store.Entries, after.Store.Entries, before.Store.Digest, after.Store.Digest)
	}
	for _, name := range []string{"goodname", "crlf", "nulvalue"} {
		if v, ok, err := n.get(name); err != nil || ok {
			t.Errorf("refused factoid %q is readable: %q (err %v)", name, v, err)
		}
	}
}

// putFactoid does PUT /v1/factoids/{name} on the Unix socket and returns
// the HTTP status and body.
func putFactoid(t *testing.T, socket, name, value string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	body, _ := json.Marshal(map[string]string{"value": value, "author": "e2e"})
	req, err := http.NewRequest(http.MethodPut, "http://meshbot/v1/factoids/"+pathEscape(name), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("PUT factoid: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pathEscape escapes every byte outside [A-Za-z0-9._-] (url.PathEscape
// would leave some bytes that matter here alone).
func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-' {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}
