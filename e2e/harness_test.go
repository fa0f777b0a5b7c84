package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshbot/meshbot/e2e/irctest"
	"go.yaml.in/yaml/v3"
)

// Paths of the binaries built by TestMain.
var (
	meshbotBin string
	meshctlBin string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := irctest.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "meshbot-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/meshbot", "./cmd/meshctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/meshbot ./cmd/meshctl in %s: %v\n%s", root, err, out)
		return 1
	}
	meshbotBin = filepath.Join(dir, "meshbot")
	meshctlBin = filepath.Join(dir, "meshctl")

	// Kill every child also when the test binary is interrupted (go test
	// -timeout sends SIGQUIT, which we cannot catch usefully; the children's
	// parent-death signal covers that case).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopSig := make(chan struct{})
	sigDone := make(chan struct{})
	go func() {
		defer close(sigDone)
		select {
		case s := <-sigs:
			procs.killAll()
			fmt.Fprintf(os.Stderr, "e2e: %v: killed all child processes\n", s)
			os.Exit(1)
		case <-stopSig:
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(stopSig)
		<-sigDone
		procs.killAll()
	}()
	return m.Run()
}

// registry holds every child process still running, so they can all be
// killed on exit.
type registry struct {
	mu    sync.Mutex
	procs map[*os.Process]struct{}
}

var procs = &registry{procs: map[*os.Process]struct{}{}}

func (r *registry) add(p *os.Process) {
	r.mu.Lock()
	r.procs[p] = struct{}{}
	r.mu.Unlock()
}

func (r *registry) remove(p *os.Process) {
	r.mu.Lock()
	delete(r.procs, p)
	r.mu.Unlock()
}

func (r *registry) killAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.procs {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL) // the whole process group
		_ = p.Kill()
	}
}

// childAttr puts a child in its own process group and kills it when the
// test binary dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// ---------------------------------------------------------------- ports

var (
	portMu   sync.Mutex
	usedPort = map[int]bool{}
)

// freePort returns a port that is free on 127.0.0.1 for both TCP and UDP
// (gossip uses both) and was not handed out before in this process.
func freePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if usedPort[port] {
			continue
		}
		usedPort[port] = true
		return port
	}
	t.Fatal("no free TCP+UDP port found")
	return 0
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// ---------------------------------------------------------------- eventually

// eventually polls f every interval until it returns nil, and fails the test
// with f's last error when timeout passes.
func eventually(t testing.TB, timeout, interval time.Duration, what string, f func() error) {
	t.Helper()
	if err := poll(timeout, interval, f); err != nil {
		t.Fatalf("%s: not true after %s: %v", what, timeout, err)
	}
}

// poll is eventually without the test: it returns f's last error on timeout.
func poll(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// ---------------------------------------------------------------- config

// config is the daemon's YAML config file (the keys of DESIGN.md's contract).
type config struct {
	Name    string         `yaml:"name"`
	Rank    int            `yaml:"rank"`
	DataDir string         `yaml:"data_dir"`
	Mesh    meshConfig     `yaml:"mesh"`
	Control *controlConfig `yaml:"control,omitempty"`
	Store   storeConfig    `yaml:"store"`
	Log     logConfig      `yaml:"log"`
	IRC     *ircConfig     `yaml:"irc,omitempty"`
	Editors []string       `yaml:"editors,omitempty"`
	// Extra is raw YAML appended to the file (bad-input tests).
	Extra string `yaml:"-"`
}

type meshConfig struct {
	Bind          string   `yaml:"bind"`
	Join          []string `yaml:"join,omitempty"`
	KeyFile       string   `yaml:"key_file,omitempty"`
	Profile       string   `yaml:"profile"`
	Failback      string   `yaml:"failback"`
	PreemptDelay  string   `yaml:"preempt_delay"`
	RetryInterval string   `yaml:"retry_interval,omitempty"`
}

type controlConfig struct {
	Socket    string `yaml:"socket,omitempty"`
	Listen    string `yaml:"listen,omitempty"`
	TokenFile string `yaml:"token_file,omitempty"`
}

type storeConfig struct {
	SyncInterval  string `yaml:"sync_interval"`
	SnapshotEvery string `yaml:"snapshot_every"`
	SnapshotKeep  int    `yaml:"snapshot_keep"`
}

type logConfig struct {
	Level string `yaml:"level"`
}

type ircConfig struct {
	Servers        []string `yaml:"servers"`
	Nick           string   `yaml:"nick"`
	BotChannel     string   `yaml:"bot_channel"`
	Channels       []string `yaml:"channels"`
	RelayChannel   string   `yaml:"relay_channel"`
	Prefix         string   `yaml:"prefix"`
	Hedge          string   `yaml:"hedge"`
	PingInterval   string   `yaml:"ping_interval"`
	HandoffTimeout string   `yaml:"handoff_timeout"`
}

// preemptDelay is the preempt_delay every test mesh uses.
const preemptDelay = 5 * time.Second

func (c config) marshal(t testing.TB) []byte {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	if c.Extra != "" {
		b = append(b, []byte(c.Extra)...)
	}
	return b
}

// writeKey writes a new base64 gossip key of n bytes to a file in dir.
func writeKey(t testing.TB, dir, name string, n int) string {
	t.Helper()
	k := make([]byte, n)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ---------------------------------------------------------------- node

// node is one meshbot process (and its data directory, which outlives
// restarts).
type node struct {
	t       testing.TB
	name    string
	cfg     config
	cfgPath string
	logPath string
	socket  string

	mu      sync.Mutex
	proc    *os.Process
	done    chan struct{} // closed when the current process exited
	exitErr error         // of the last process, valid after done
	starts  int
	logFile *os.File
}

// newNode writes cfg to DIR/NAME.yaml; the data dir is DIR/NAME.
func newNode(t testing.TB, dir string, cfg config) *node {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(dir, cfg.Name)
	}
	n := &node{
		t:       t,
		name:    cfg.Name,
		cfg:     cfg,
		cfgPath: filepath.Join(dir, cfg.Name+".yaml"),
		logPath: filepath.Join(dir, cfg.Name+".log"),
		socket:  filepath.Join(cfg.DataDir, "meshbot.sock"),
	}
	if cfg.Control != nil && cfg.Control.Socket != "" {
		n.socket = cfg.Control.Socket
	}
	if err := os.WriteFile(n.cfgPath, cfg.marshal(t), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("---- last non-debug lines of %s (full log: %s):\n%s", n.name, n.logPath, n.logTail(40))
		}
		if n.logFile != nil {
			n.logFile.Close()
		}
	})
	return n
}

// start starts the daemon with extra flags; it does not wait for readiness.
func (n *node) start(flags ...string) {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		select {
		case <-n.done:
		default:
			n.t.Fatalf("start %s: already running", n.name)
		}
	}
	if n.logFile == nil {
		f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			n.t.Fatal(err)
		}
		n.logFile = f
	}
	n.starts++
	fmt.Fprintf(n.logFile, "==== e2e: start #%d of %s at %s\n", n.starts, n.name, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"run", "-config", n.cfgPath}, flags...)
	cmd := exec.Command(meshbotBin, args...)
	cmd.Stdout = n.logFile
	cmd.Stderr = n.logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %s: %v", n.name, err)
	}
	procs.add(cmd.Process)
	n.proc = cmd.Process
	done := make(chan struct{})
	n.done = done
	go func() {
		err := cmd.Wait()
		procs.remove(cmd.Process)
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(done)
	}()
}

// running reports whether the current process is still alive.
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the running process.
func (n *node) signal(sig syscall.Signal) {
	n.t.Helper()
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		n.t.Fatalf("signal %s: never started", n.name)
	}
	if err := p.Signal(sig); err != nil {
		n.t.Fatalf("signal %v to %s: %v", sig, n.name, err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1 if killed by a signal) and whether it exited.
func (n *node) wait(timeout time.Duration) (code int, exited bool) {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return 0, true
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return 0, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exitErr == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if errors.As(n.exitErr, &ee) {
		return ee.ExitCode(), true
	}
	return -1, true
}

// kill SIGKILLs the process group (also a stopped one) and waits for it.
func (n *node) kill() {
	n.mu.Lock()
	p, done := n.proc, n.done
	n.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
	<-done
}

// terminate sends SIGTERM and waits for a clean exit.
func (n *node) terminate() {
	n.t.Helper()
	n.signal(syscall.SIGTERM)
	code, exited := n.wait(45 * time.Second)
	if !exited {
		n.t.Fatalf("%s did not exit within 45s of SIGTERM", n.name)
	}
	if code != 0 {
		n.t.Errorf("%s exited with code %d after SIGTERM, want 0", n.name, code)
	}
}

// logText returns the whole captured stderr.
func (n *node) logText() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// logTail returns the last lines of the log without debug lines.
func (n *node) logTail(lines int) string {
	var all []string
	for _, l := range strings.Split(strings.TrimRight(n.logText(), "\n"), "\n") {
		if !strings.Contains(l, "level=DEBUG") {
			all = append(all, l)
		}
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// ctlResult is one meshctl run.
type ctlResult struct {
	Stdout, Stderr string
	Code           int
}

func (r ctlResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
}

// runCtl runs meshctl with args and returns its output and exit code; a
// failure to run it at all gives code -1. It is safe to call from any
// goroutine.
func runCtl(args ...string) ctlResult {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, meshctlBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	cmd.SysProcAttr = childAttr()
	cmd.Env = append(os.Environ(), "MESHCTL_SOCKET=", "MESHCTL_ADDR=", "MESHCTL_TOKEN_FILE=")
	err := cmd.Run()
	r := ctlResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr = fmt.Sprintf("run meshctl %q: %v", args, err)
	}
	return r
}

// ctl runs meshctl against this node's socket; safe from any goroutine.
func (n *node) ctl(args ...string) ctlResult {
	return runCtl(append([]string{"-socket", n.socket}, args...)...)
}

// mustCtl runs meshctl and fails the test unless it exits 0.
func (n *node) mustCtl(args ...string) string {
	n.t.Helper()
	r := n.ctl(args...)
	if r.Code != 0 {
		n.t.Fatalf("meshctl %q on %s: %s", args, n.name, r)
	}
	return r.Stdout
}

// member is one row of `meshctl members -o json`.
type member struct {
	Name         string `json:"name"`
	Addr         string `json:"addr"`
	Rank         int    `json:"rank"`
	Position     int    `json:"position"`
	Status       string `json:"status"`
	Role         string `json:"role"`
	Health       string `json:"health"`
	IRCConnected bool   `json:"irc_connected"`
	Nick         string `json:"nick"`
	LagMS        int64  `json:"lag_ms"`
	Version      string `json:"version"`
	Entries      int64  `json:"entries"`
	Digest       string `json:"digest"`
	Self         bool   `json:"self"`
}

// status is `meshctl status -o json`.
type status struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Active string `json:"active"`
	Health string `json:"health"`
	IRC    struct {
		Connected bool   `json:"connected"`
		Nick      string `json:"nick"`
	} `json:"irc"`
	Store struct {
		Healthy bool   `json:"healthy"`
		Reason  string `json:"reason"`
		Entries int64  `json:"entries"`
		Digest  string `json:"digest"`
	} `json:"store"`
}

// members returns the node's view of the mesh.
func (n *node) members() ([]member, error) {
	r := runCtl("-socket", n.socket, "-o", "json", "members")
	if r.Code != 0 {
		return nil, fmt.Errorf("members on %s: %s", n.name, r)
	}
	var ms []member
	if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil {
		return nil, fmt.Errorf("members on %s: %v in %q", n.name, err, r.Stdout)
	}
	return ms, nil
}

func (n *node) status() (status, error) {
	var s status
	r := runCtl("-socket", n.socket, "status", "-o", "json")
	if r.Code != 0 {
		return s, fmt.Errorf("status on %s: %s", n.name, r)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		return s, fmt.Errorf("status on %s: %v in %q", n.name, err, r.Stdout)
	}
	return s, nil
}

// get returns a factoid's value as printed by `meshctl factoid get`, and
// false when meshctl exits 1 (not found).
func (n *node) get(name string) (string, bool, error) {
	r := n.ctl("factoid", "get", name)
	switch r.Code {
	case 0:
		return strings.TrimSuffix(r.Stdout, "\n"), true, nil
	case 1:
		if !n.running() {
			return "", false, fmt.Errorf("%s is not running", n.name)
		}
		if strings.Contains(r.Stderr, "cannot reach") {
			return "", false, fmt.Errorf("get %s on %s: %s", name, n.name, r)
		}
		return "", false, nil
	}
	return "", false, fmt.Errorf("get %s on %s: %s", name, n.name, r)
}

func (n *node) set(name, value string) {
	n.t.Helper()
	n.mustCtl("factoid", "set", name, value)
}

// byName indexes a members list.
func byName(ms []member) map[string]member {
	m := make(map[string]member, len(ms))
	for _, x := range ms {
		m[x.Name] = x
	}
	return m
}

// actives returns the names of the members shown active.
func actives(ms []member) []string {
	var a []string
	for _, m := range ms {
		if m.Role == "active" {
			a = append(a, m.Name)
		}
	}
	sort.Strings(a)
	return a
}

func fmtMembers(ms []member) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "[%s rank=%d %s %s %s irc=%v digest=%.12s] ", m.Name, m.Rank, m.Status, m.Role, m.Health, m.IRCConnected, m.Digest)
	}
	return b.String()
}

// ---------------------------------------------------------------- cluster

// cluster is a mesh of nodes started from one test.
type cluster struct {
	t     testing.TB
	dir   string
	key   string // key file shared by all nodes
	nodes []*node
	began time.Time // when the nodes were started
}

// age waits until the nodes have been running for longer than
// preempt_delay. The preempt hold-down only applies against nodes that have
// been healthy for preempt_delay already (mesh.Decide: "nodes that became
// healthy together do not hold each other down"), so failback scenarios
// start from a mesh at least that old, as a real one is.
func (c *cluster) age() {
	if d := time.Until(c.began.Add(preemptDelay + time.Second)); d > 0 {
		time.Sleep(d)
	}
}

// clusterOpts tunes newCluster.
type clusterOpts struct {
	n   int
	irc func(i int) *ircConfig // nil = mesh-only
	mod func(i int, c *config) // last-minute changes
}

// newCluster writes configs for nodes n1..nN (rank i), all with one gossip
// key, profile fast, preempt failback, and starts them.
func newCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	dir := tempDir(t)
	c := &cluster{t: t, dir: dir, key: writeKey(t, dir, "gossip.key", 32)}
	ports := make([]int, o.n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	for i := range o.n {
		var join []string
		for j, p := range ports {
			if j != i {
				join = append(join, addr(p))
			}
		}
		cfg := config{
			Name:    fmt.Sprintf("n%d", i+1),
			Rank:    i + 1,
			DataDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			Mesh: meshConfig{
				Bind:          addr(ports[i]),
				Join:          join,
				KeyFile:       c.key,
				Profile:       "fast",
				Failback:      "preempt",
				PreemptDelay:  preemptDelay.String(),
				RetryInterval: "1s",
			},
			Store: storeConfig{SyncInterval: "500ms", SnapshotEvery: "24h", SnapshotKeep: 7},
			Log:   logConfig{Level: "debug"},
		}
		if o.irc != nil {
			cfg.IRC = o.irc(i)
			cfg.Editors = []string{"*!*@*"}
		}
		if o.mod != nil {
			o.mod(i, &cfg)
		}
		c.nodes = append(c.nodes, newNode(t, dir, cfg))
	}
	c.began = time.Now()
	for _, n := range c.nodes {
		n.start()
	}
	return c
}

// tempDir is a world-readable temp dir (ngircd may drop to nobody) that is
// removed after the test; it is kept when the test failed, for the logs.
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "meshbot-e2e-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept %s for inspection", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// waitFormed waits until every running node sees all running nodes alive
// and exactly one active, the running node with the best rank.
func (c *cluster) waitFormed(timeout time.Duration) {
	c.t.Helper()
	var up []*node
	for _, n := range c.nodes {
		if n.running() {
			up = append(up, n)
		}
	}
	want := up[0].name
	eventually(c.t, timeout, 100*time.Millisecond, "mesh formed", func() error {
		for _, n := range up {
			ms, err := n.members()
			if err != nil {
				return err
			}
			bn := byName(ms)
			for _, o := range up {
				if bn[o.name].Status != "alive" {
					return fmt.Errorf("%s sees %s as %q: %s", n.name, o.name, bn[o.name].Status, fmtMembers(ms))
				}
			}
			if a := actives(ms); !slices.Equal(a, []string{want}) {
				return fmt.Errorf("%s sees active %v, want [%s]: %s", n.name, a, want, fmtMembers(ms))
			}
		}
		return nil
	})
}

// digests returns each node's own store digest (status -o json).
func (c *cluster) digests(ns ...*node) (map[string]string, error) {
	if len(ns) == 0 {
		ns = c.nodes
	}
	d := map[string]string{}
	for _, n := range ns {
		s, err := n.status()
		if err != nil {
			return nil, err
		}
		d[n.name] = s.Store.Digest
	}
	return d, nil
}

// waitConverged waits until all given nodes report the same non-empty
// digest in status and in every node's members view.
func (c *cluster) waitConverged(timeout time.Duration, ns ...*node) string {
	c.t.Helper()
	if len(ns) == 0 {
		ns = c.nodes
	}
	var digest string
	eventually(c.t, timeout, 200*time.Millisecond, "digests equal", func() error {
		d, err := c.digests(ns...)
		if err != nil {
			return err
		}
		digest = d[ns[0].name]
		for _, v := range d {
			if v == "" || v != digest {
				return fmt.Errorf("status digests differ: %v", d)
			}
		}
		for _, n := range ns {
			ms, err := n.members()
			if err != nil {
				return err
			}
			bn := byName(ms)
			for _, o := range ns {
				if bn[o.name].Digest != digest {
					return fmt.Errorf("%s's members view shows digest %q for %s, want %q", n.name, bn[o.name].Digest, o.name, digest)
				}
			}
		}
		return nil
	})
	return digest
}

// median of durations (sorted copy).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// ms formats d in milliseconds with one decimal.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

// figure prints a measured value in the recognisable form.
func figure(t testing.TB, name string, value any) {
	t.Helper()
	t.Logf("FIGURE %s=%v", name, value)
}

// parallelDo runs f(i) for i in [0,n) on w workers and returns the first
// error.
func parallelDo(n, w int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
