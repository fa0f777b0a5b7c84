// Command nodebench measures whole meshbot nodes: it starts N real meshbot
// processes (mesh-only) on loopback and prints a markdown table of join
// time, edit convergence, SIGKILL failover, graceful-leave propagation, and
// idle CPU and RSS per node.
//
//	make build && go run ./cmd/internal/nodebench -n 3,10,50 -profile fast
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshbot/meshbot/cmd/internal/ctlapi"
)

// syncInterval is the nodes' store.sync_interval (-sync).
var syncInterval time.Duration

type node struct {
	name string
	dir  string
	cmd  *exec.Cmd
	c    *ctlapi.Client
}

func main() {
	sizes := flag.String("n", "3,10", "comma-separated mesh sizes")
	profile := flag.String("profile", "fast", "mesh profile: lan, fast or wan")
	runs := flag.Int("runs", 5, "failover and edit repetitions per size")
	idle := flag.Duration("idle", 20*time.Second, "idle measurement window")
	bin := flag.String("bin", "bin", "directory with the meshbot binary")
	base := flag.Int("port", 23000, "first gossip port")
	flag.DurationVar(&syncInterval, "sync", 2*time.Second, "store.sync_interval of the nodes")
	flag.Parse()
	fmt.Printf("| nodes | profile | join (all see all) | edit convergence median / max | SIGKILL failover median / max | graceful leave median | idle CPU per node | RSS per node |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|\n")
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "bad size %q\n", s)
			os.Exit(2)
		}
		row, err := measure(n, *profile, *runs, *idle, *bin, *base)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nodebench:", err)
			os.Exit(1)
		}
		fmt.Println(row)
	}
}

func start(bin, work string, i, base int, profile string, key string) (*node, error) {
	name := fmt.Sprintf("b%02d", i)
	dir := filepath.Join(work, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`name: %s
rank: %d
data_dir: %s
mesh:
  bind: 127.0.0.1:%d
  join: [127.0.0.1:%d, 127.0.0.1:%d]
  key_file: %s
  profile: %s
  preempt_delay: 1h
store:
  snapshot_every: 0s
  sync_interval: %s
log:
  level: warn
`, name, i, dir, base+i, base+1, base+2, key, profile, syncInterval)
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, "meshbot"), "run", "-config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &node{name: name, dir: dir, cmd: cmd, c: &ctlapi.Client{Socket: filepath.Join(dir, "meshbot.sock")}}, nil
}

// waitAll polls until cond holds for every node in ns, returning the time it took.
func waitAll(ns []*node, timeout time.Duration, cond func(*node) bool) (time.Duration, error) {
	t0 := time.Now()
	pending := slices.Clone(ns)
	for len(pending) > 0 {
		if time.Since(t0) > timeout {
			return 0, fmt.Errorf("timeout after %s (%d nodes pending, e.g. %s)", timeout, len(pending), pending[0].name)
		}
		pending = slices.DeleteFunc(pending, cond)
		if len(pending) > 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return time.Since(t0), nil
}

func activeIs(want string) func(*node) bool {
	return func(n *node) bool {
		ms, err := n.c.Members(context.Background())
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.Role == "active" {
				return m.Name == want
			}
		}
		return false
	}
}

func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

func rssKB(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func measure(n int, profile string, runs int, idle time.Duration, bin string, base int) (string, error) {
	work, err := os.MkdirTemp("", "nodebench")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	keyOut, err := exec.Command(filepath.Join(bin, "meshbot"), "keygen").Output()
	if err != nil {
		return "", fmt.Errorf("keygen: %w", err)
	}
	key := filepath.Join(work, "key")
	os.WriteFile(key, keyOut, 0o600)
	var nodes []*node
	defer func() {
		for _, nd := range nodes {
			nd.cmd.Process.Kill()
			nd.cmd.Wait()
		}
	}()
	t0 := time.Now()
	for i := 1; i <= n; i++ {
		nd, err := start(bin, work, i, base, profile, key)
		if err != nil {
			return "", err
		}
		nodes = append(nodes, nd)
	}
	allAlive := func(nd *node) bool {
		ms, err := nd.c.Members(context.Background())
		if err != nil {
			return false
		}
		alive := 0
		for _, m := range ms {
			if m.Status == "alive" {
				alive++
			}
		}
		return alive == n
	}
	if _, err := waitAll(nodes, 60*time.Second, allAlive); err != nil {
		return "", fmt.Errorf("join: %w", err)
	}
	join := time.Since(t0)

	// Edit convergence: set on a random node, poll every other node.
	var edits []time.Duration
	for r := range runs {
		src := nodes[rand.IntN(len(nodes))]
		val := fmt.Sprintf("value %d %d", r, time.Now().UnixNano())
		t := time.Now()
		if _, err := src.c.SetFactoid(context.Background(), "bench", val, "nodebench"); err != nil {
			return "", err
		}
		if _, err := waitAll(nodes, 30*time.Second, func(nd *node) bool {
			f, err := nd.c.GetFactoid(context.Background(), "bench")
			return err == nil && f.Value == val
		}); err != nil {
			return "", fmt.Errorf("edit convergence: %w", err)
		}
		edits = append(edits, time.Since(t))
	}

	// Idle CPU and RSS.
	time.Sleep(2 * time.Second)
	before := make([]int64, n)
	for i, nd := range nodes {
		before[i], _ = cpuTicks(nd.cmd.Process.Pid)
	}
	time.Sleep(idle)
	var ticks, rss int64
	for i, nd := range nodes {
		after, _ := cpuTicks(nd.cmd.Process.Pid)
		ticks += after - before[i]
		rss += rssKB(nd.cmd.Process.Pid)
	}
	cpuPct := float64(ticks) / 100 / idle.Seconds() / float64(n) * 100 // CLK_TCK = 100

	// Failover: SIGKILL the active node, wait until every survivor names
	// the next one; restart the victim at the bottom (it keeps its rank but
	// the 1h preempt_delay stops it from taking the role back).
	var fails []time.Duration
	for r := range runs {
		ms, err := nodes[len(nodes)-1].c.Members(context.Background())
		if err != nil {
			return "", err
		}
		var order []string
		for _, m := range ms {
			if m.Role == "active" || m.Role == "standby" {
				order = append(order, m.Name)
			}
		}
		if len(order) < 2 {
			return "", fmt.Errorf("run %d: fewer than 2 candidates", r)
		}
		victim, next := order[0], order[1]
		var vi int
		var survivors []*node
		for i, nd := range nodes {
			if nd.name == victim {
				vi = i
			} else {
				survivors = append(survivors, nd)
			}
		}
		nodes[vi].cmd.Process.Signal(syscall.SIGKILL)
		nodes[vi].cmd.Wait()
		d, err := waitAll(survivors, 60*time.Second, activeIs(next))
		if err != nil {
			return "", fmt.Errorf("failover run %d: %w", r, err)
		}
		fails = append(fails, d)
		nd, err := start(bin, work, vi+1, base, profile, key)
		if err != nil {
			return "", err
		}
		nodes[vi] = nd
		if _, err := waitAll(nodes, 60*time.Second, allAlive); err != nil {
			return "", fmt.Errorf("rejoin: %w", err)
		}
	}

	// Graceful leave: SIGTERM the last node, wait until the others show it left.
	var leaves []time.Duration
	for range min(runs, 3) {
		vi := len(nodes) - 1
		victim := nodes[vi]
		others := nodes[:vi]
		victim.cmd.Process.Signal(syscall.SIGTERM)
		d, err := waitAll(others, 30*time.Second, func(nd *node) bool {
			ms, err := nd.c.Members(context.Background())
			if err != nil {
				return false
			}
			for _, m := range ms {
				if m.Name == victim.name {
					return m.Status == "left"
				}
			}
			return false
		})
		if err != nil {
			return "", fmt.Errorf("leave: %w", err)
		}
		leaves = append(leaves, d)
		victim.cmd.Wait()
		nd, err := start(bin, work, vi+1, base, profile, key)
		if err != nil {
			return "", err
		}
		nodes[vi] = nd
		if _, err := waitAll(nodes, 60*time.Second, allAlive); err != nil {
			return "", fmt.Errorf("rejoin after leave: %w", err)
		}
	}
	return fmt.Sprintf("| %d | %s | %s | %s / %s | %s / %s | %s | %.2f %% | %.1f MiB |",
		n, profile, ms(join), ms(median(edits)), ms(slices.Max(edits)),
		ms(median(fails)), ms(slices.Max(fails)), ms(median(leaves)), cpuPct, float64(rss)/float64(n)/1024), nil
}
