//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshbot/meshbot/e2e/irctest"
)

const (
	ngircdPath   = "/usr/sbin/ngircd"
	gossipPort   = 7946
	channel      = "#chaos"
	botChannel   = "#bots"
	factoidName  = "chaos"
	factoidValue = "alive and answering"
	dockerTime   = 90 * time.Second // bound on any docker command
	ctlTime      = 5 * time.Second  // bound on any meshctl command
)

// member and status mirror the parts of meshctl's JSON the suite reads
// (the wire types live in cmd/internal/ctlapi, which e2e cannot import).
type member struct {
	Name         string `json:"name"`
	Addr         string `json:"addr"`
	Rank         int    `json:"rank"`
	Status       string `json:"status"`
	Role         string `json:"role"`
	Health       string `json:"health"`
	IRCConnected bool   `json:"irc_connected"`
	Nick         string `json:"nick"`
	Digest       string `json:"digest"`
	Self         bool   `json:"self"`
}

type status struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Active  string `json:"active"`
	Health  string `json:"health"`
	Members int    `json:"members"`
	IRC     struct {
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

// netInfo is a Docker network the suite created.
type netInfo struct {
	name    string
	gateway string
	subnet  *net.IPNet
}

// cluster is the system under test: three meshbot containers, one proxy
// per node on the host, ngircd on the host and an IRC observer.
type cluster struct {
	prefix  string
	dir     string // host temp root (configs, data dirs, ngircd)
	root    string // module root
	meshctl string // host meshctl binary
	image   string
	keyPath string
	mesh    netInfo
	irc     netInfo
	ircAddr string

	ngMu   sync.Mutex
	ngircd *exec.Cmd
	ngConf string
	ngLog  string

	nodes []*node
	obs   *Observer
}

// node is one meshbot container.
type node struct {
	c         *cluster
	name      string
	nick      string
	rank      int
	container string
	dataDir   string
	cfgPath   string
	proxy     *Proxy
}

// run runs a command with a timeout and returns its combined output.
func run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

func docker(args ...string) (string, error) { return run(dockerTime, nil, "docker", args...) }

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newCluster builds the image, creates the networks, starts ngircd, the
// proxies, the three nodes and the observer, and registers the cleanup of
// all of it.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	if out, err := docker("version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("docker is not usable, the chaos suite cannot run (it never skips): %v", err)
	} else {
		t.Logf("docker engine %s", out)
	}
	if _, err := os.Stat(ngircdPath); err != nil {
		t.Fatalf("ngircd missing (%v): install ngircd: apt-get install -y ngircd", err)
	}
	root, err := irctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var rb [3]byte
	_, _ = rand.Read(rb[:])
	c := &cluster{prefix: "mbchaos-" + hex.EncodeToString(rb[:]), root: root}
	c.dir, err = os.MkdirTemp("", c.prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	// ngircd drops to user nobody and the containers run as uid 65532:
	// everything they read must be world-readable.
	if err := os.Chmod(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(c.dir) })
	t.Cleanup(func() { c.teardown(t) })
	t.Logf("chaos prefix %s, dir %s", c.prefix, c.dir)

	t0 := time.Now()
	c.buildImage(t)
	t.Logf("binaries and image built in %.1fs", time.Since(t0).Seconds())
	c.mesh = c.createNetwork(t, "mesh")
	c.irc = c.createNetwork(t, "irc")
	c.startIRC(t)

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c.keyPath = filepath.Join(c.dir, "gossip.key")
	if err := os.WriteFile(c.keyPath, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		p, err := NewProxy(ProxyConfig{
			Listen: net.JoinHostPort(c.mesh.gateway, "0"),
			// After `docker network disconnect` a container can still
			// reach the host's mesh gateway IP through its IRC network;
			// only traffic from the mesh subnet is gossip.
			Allow: func(ip net.IP) bool { return c.mesh.subnet.Contains(ip) },
			Seed:  uint64(i),
		})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &node{c: c, name: fmt.Sprintf("n%d", i), nick: fmt.Sprintf("chaosbot%d", i),
			rank: i, container: fmt.Sprintf("%s-n%d", c.prefix, i), proxy: p})
	}
	for _, n := range c.nodes {
		n.create(t)
	}
	for _, n := range c.nodes {
		n.start(t)
	}
	// The image's own meshctl works too (the suite uses the host's on
	// the bind-mounted socket: faster, and it works while a container is
	// frozen, bounded by a timeout).
	if _, err := waitFor(20*time.Second, func() (bool, error) {
		_, err := docker("exec", c.nodes[0].container, "/meshctl", "-socket", "/data/meshbot.sock", "status", "-o", "json")
		return err == nil, err
	}); err != nil {
		t.Fatalf("meshctl inside the container: %v", err)
	}
	t.Logf("nodes started %.1fs after the build", time.Since(t0).Seconds())
	c.obs, err = NewObserver(ObserverConfig{Addr: c.ircAddr, Nick: "chaosobs", Channel: channel,
		Factoid: factoidName, Interval: askInterval, AskOnJoin: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) buildImage(t *testing.T) {
	t.Helper()
	ctxDir := filepath.Join(c.dir, "image")
	bin := filepath.Join(ctxDir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", bin+string(filepath.Separator), "./cmd/meshbot", "./cmd/meshctl")
	build.Dir = c.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build static binaries: %v\n%s", err, out)
	}
	c.meshctl = filepath.Join(bin, "meshctl")
	dockerfile := filepath.Join(ctxDir, "Dockerfile")
	if c.useDeployDockerfile(t, ctxDir) {
		dockerfile = filepath.Join(ctxDir, "deploy", "Dockerfile")
		t.Logf("image from deploy/Dockerfile")
	} else {
		t.Logf("deploy/Dockerfile missing or not FROM scratch with bin/meshbot and bin/meshctl: using the suite's own")
		df := "FROM scratch\nCOPY bin/meshbot /meshbot\nCOPY bin/meshctl /meshctl\n" +
			`ENTRYPOINT ["/meshbot","run","-config","/etc/meshbot/meshbot.yaml"]` + "\n"
		if err := os.WriteFile(dockerfile, []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.image = c.prefix + "-img:latest"
	// The legacy builder: this engine has no BuildKit and nothing can be
	// pulled; a FROM scratch build needs neither.
	if out, err := run(dockerTime, []string{"DOCKER_BUILDKIT=0"}, "docker", "build", "-q", "--label", "mbchaos="+c.prefix,
		"-t", c.image, "-f", dockerfile, ctxDir); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}

// useDeployDockerfile copies deploy/ and the CA bundle into the build
// context when deploy/Dockerfile fits (FROM scratch, expects bin/meshbot
// and bin/meshctl).
func (c *cluster) useDeployDockerfile(t *testing.T, ctxDir string) bool {
	t.Helper()
	src := filepath.Join(c.root, "deploy")
	df, err := os.ReadFile(filepath.Join(src, "Dockerfile"))
	if err != nil {
		return false
	}
	s := string(df)
	if !strings.Contains(s, "FROM scratch") || !strings.Contains(s, "bin/meshbot") || !strings.Contains(s, "bin/meshctl") {
		return false
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.root, path)
		dst := filepath.Join(ctxDir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy deploy/ into the build context: %v", err)
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		ca = nil // the suite uses no TLS; the Dockerfile only needs the file
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "bin", "ca-certificates.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return true
}

func (c *cluster) createNetwork(t *testing.T, kind string) netInfo {
	t.Helper()
	name := c.prefix + "-" + kind
	mustDocker(t, "network", "create", "--driver", "bridge", "--label", "mbchaos="+c.prefix, name)
	ni := netInfo{name: name}
	out := mustDocker(t, "network", "inspect", name, "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}")
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("network %s: subnet and gateway from %q", name, out)
	}
	_, sn, err := net.ParseCIDR(f[0])
	if err != nil {
		t.Fatalf("network %s subnet: %v", name, err)
	}
	ni.subnet, ni.gateway = sn, f[1]
	t.Logf("network %s: %s gateway %s", name, sn, ni.gateway)
	return ni
}

// startIRC writes the ngircd config (bound to the irc network's gateway)
// and starts it.
func (c *cluster) startIRC(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(c.irc.gateway, "0"))
	if err != nil {
		t.Fatalf("free port on %s: %v", c.irc.gateway, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c.ircAddr = net.JoinHostPort(c.irc.gateway, fmt.Sprint(port))
	dir := filepath.Join(c.dir, "ngircd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := irctest.NgircdConfig("irc.chaos.test", c.irc.gateway, port)
	c.ngConf = filepath.Join(dir, "ngircd.conf")
	c.ngLog = filepath.Join(dir, "ngircd.log")
	if err := os.WriteFile(c.ngConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(30*time.Second, nil, ngircdPath, "--configtest", "-f", c.ngConf); err != nil {
		t.Fatalf("ngircd --configtest: %v\n%s", err, out)
	}
	if err := c.ircUp(); err != nil {
		t.Fatal(err)
	}
	t.Logf("ngircd on %s", c.ircAddr)
}

// ircUp starts ngircd and waits until it accepts connections.
func (c *cluster) ircUp() error {
	logf, err := os.OpenFile(c.ngLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(ngircdPath, "-n", "-f", c.ngConf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ngircd: %w", err)
	}
	c.ngMu.Lock()
	c.ngircd = cmd
	c.ngMu.Unlock()
	_, err = waitFor(20*time.Second, func() (bool, error) {
		conn, err := net.DialTimeout("tcp", c.ircAddr, time.Second)
		if err != nil {
			return false, err
		}
		conn.Close()
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("ngircd not listening on %s: %w", c.ircAddr, err)
	}
	return nil
}

// ircDown stops ngircd (SIGTERM, then SIGKILL) and waits for it.
func (c *cluster) ircDown() {
	c.ngMu.Lock()
	cmd := c.ngircd
	c.ngircd = nil
	c.ngMu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// teardown removes everything the suite created; it runs even when the
// test fails. Logs are kept when the test failed or CHAOS_KEEP_LOGS is set.
func (c *cluster) teardown(t *testing.T) {
	if dir := os.Getenv("CHAOS_KEEP_LOGS"); dir != "" || t.Failed() {
		c.saveLogs(t, dir)
	}
	if c.obs != nil {
		c.obs.Close()
	}
	for _, n := range c.nodes {
		if _, err := docker("rm", "-f", "-v", n.container); err != nil && !strings.Contains(err.Error(), "No such container") {
			t.Logf("cleanup: %v", err)
		}
		n.proxy.Close()
	}
	c.ircDown()
	for _, ni := range []netInfo{c.mesh, c.irc} {
		if ni.name != "" {
			if _, err := docker("network", "rm", ni.name); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	}
	if c.image != "" {
		if _, err := docker("rmi", "-f", c.image); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
	// Container-owned files (uid 65532) in the bind mounts: root removes
	// them; as another user make them removable first.
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o777)
		}
		return nil
	})
}

// saveLogs writes every node's log, the observer's transcript and the
// ngircd log to dir (a new temp dir if empty) and says where.
func (c *cluster) saveLogs(t *testing.T, dir string) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", c.prefix+"-logs-"); err != nil {
			t.Logf("save logs: %v", err)
			return
		}
	}
	_ = os.MkdirAll(dir, 0o755)
	for _, n := range c.nodes {
		out, _ := docker("logs", n.container)
		_ = os.WriteFile(filepath.Join(dir, n.name+".log"), []byte(out), 0o644)
		lines := strings.Split(out, "\n")
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", n.name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	}
	if b, err := os.ReadFile(c.ngLog); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "ngircd.log"), b, 0o644)
	}
	if c.obs != nil {
		var b bytes.Buffer
		for _, e := range c.obs.Events() {
			fmt.Fprintf(&b, "%s event %s\n", e.At.Format("15:04:05.000"), e.Text)
		}
		for _, q := range c.obs.Questions(0, c.obs.NextID()) {
			fmt.Fprintf(&b, "%s ask q%d sent=%v", q.At.Format("15:04:05.000"), q.ID, q.Sent)
			for _, a := range q.Answers {
				fmt.Fprintf(&b, " | %s %s +%dms", a.Nick, a.At.Format("15:04:05.000"), a.At.Sub(q.At).Milliseconds())
			}
			b.WriteByte('\n')
		}
		for _, a := range c.obs.Stray() {
			fmt.Fprintf(&b, "%s stray %s: %s\n", a.At.Format("15:04:05.000"), a.Nick, a.Text)
		}
		_ = os.WriteFile(filepath.Join(dir, "observer.log"), b.Bytes(), 0o644)
	}
	t.Logf("logs kept in %s", dir)
}

// config is the node's YAML config: every gossip path goes through the
// proxies (advertise = own proxy, join = the others' proxies).
func (n *node) config() string {
	var join []string
	for _, o := range n.c.nodes {
		if o != n {
			join = append(join, o.proxy.Addr())
		}
	}
	return fmt.Sprintf(`name: %s
rank: %d
data_dir: /data
mesh:
  bind: 0.0.0.0:%d
  advertise: %s
  join: [%s]
  key_file: /etc/meshbot/gossip.key
  profile: fast
  failback: preempt
  preempt_delay: 5s
  retry_interval: 1s
store:
  sync_interval: 500ms
  snapshot_every: 24h
  snapshot_keep: 7
log:
  level: debug
irc:
  servers: [%s]
  nick: %s
  bot_channel: %q
  channels: [%q]
  relay_channel: "#ops"
  prefix: "!"
  hedge: 1500ms
  handoff_timeout: 10s
editors: ["*!*@*"]
`, n.name, n.rank, gossipPort, n.proxy.Addr(), strings.Join(join, ", "), n.c.ircAddr, n.nick, botChannel, channel)
}

// create writes the config and data dir and creates the container on both
// networks (not started).
func (n *node) create(t *testing.T) {
	t.Helper()
	base := filepath.Join(n.c.dir, n.name)
	n.dataDir = filepath.Join(base, "data")
	n.cfgPath = filepath.Join(base, "meshbot.yaml")
	if err := os.MkdirAll(n.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(n.dataDir, 0o777); err != nil { // the image runs as uid 65532
		t.Fatal(err)
	}
	if err := os.WriteFile(n.cfgPath, []byte(n.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	mustDocker(t, "create", "--name", n.container, "--hostname", n.name, "--label", "mbchaos="+n.c.prefix,
		"--network", n.c.mesh.name, "--stop-timeout", "25",
		"-v", n.dataDir+":/data", "-v", n.cfgPath+":/etc/meshbot/meshbot.yaml:ro",
		"-v", n.c.keyPath+":/etc/meshbot/gossip.key:ro", n.c.image)
	mustDocker(t, "network", "connect", n.c.irc.name, n.container)
}

// start starts the container and points its proxy at its mesh address.
func (n *node) start(t *testing.T) {
	t.Helper()
	mustDocker(t, "start", n.container)
	n.retarget(t)
}

// retarget points the proxy at the container's current mesh IP (it may
// change on restart or reconnect).
func (n *node) retarget(t *testing.T) {
	t.Helper()
	ip := mustDocker(t, "inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, n.c.mesh.name), n.container)
	if net.ParseIP(ip) == nil {
		t.Fatalf("%s: no mesh IP (%q)", n.name, ip)
	}
	if err := n.proxy.SetTarget(net.JoinHostPort(ip, fmt.Sprint(gossipPort))); err != nil {
		t.Fatal(err)
	}
}

func (n *node) kill(t *testing.T)    { t.Helper(); mustDocker(t, "kill", n.container) }
func (n *node) stop(t *testing.T)    { t.Helper(); mustDocker(t, "stop", "-t", "25", n.container) }
func (n *node) pause(t *testing.T)   { t.Helper(); mustDocker(t, "pause", n.container) }
func (n *node) unpause(t *testing.T) { t.Helper(); mustDocker(t, "unpause", n.container) }

// disconnect cuts the node off the mesh network (it keeps IRC).
func (n *node) disconnect(t *testing.T) {
	t.Helper()
	mustDocker(t, "network", "disconnect", n.c.mesh.name, n.container)
}

// connect puts the node back on the mesh network.
func (n *node) connect(t *testing.T) {
	t.Helper()
	mustDocker(t, "network", "connect", n.c.mesh.name, n.container)
	n.retarget(t)
}

// repair undoes whatever a failed phase may have left behind (a paused,
// stopped or disconnected container, proxy faults, ngircd down), so one
// failing fault does not fail every later one. It reports what it fixed.
func (c *cluster) repair(t *testing.T) []string {
	t.Helper()
	var fixed []string
	c.ngMu.Lock()
	down := c.ngircd == nil
	c.ngMu.Unlock()
	if down {
		if err := c.ircUp(); err != nil {
			t.Fatal(err)
		}
		fixed = append(fixed, "ngircd restarted")
	}
	for _, n := range c.nodes {
		if n.proxy.Faults() != (Faults{}) {
			_ = n.proxy.SetFaults(Faults{})
			fixed = append(fixed, n.name+" proxy faults cleared")
		}
		out := mustDocker(t, "inspect", "-f", fmt.Sprintf(`{{.State.Status}} {{if index .NetworkSettings.Networks %q}}mesh{{end}}`, c.mesh.name), n.container)
		f := strings.Fields(out)
		switch f[0] {
		case "paused":
			n.unpause(t)
			fixed = append(fixed, n.name+" unpaused")
		case "running":
		default:
			mustDocker(t, "start", n.container)
			fixed = append(fixed, n.name+" started (was "+f[0]+")")
		}
		if len(f) < 2 {
			mustDocker(t, "network", "connect", c.mesh.name, n.container)
			fixed = append(fixed, n.name+" reconnected to the mesh network")
		}
		n.retarget(t)
	}
	return fixed
}

// ctl runs meshctl against the node's control socket (bind-mounted on the
// host) and returns stdout; the error carries stderr.
func (n *node) ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ctlTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.c.meshctl, append([]string{"-socket", filepath.Join(n.dataDir, "meshbot.sock")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: meshctl %s: %w: %s", n.name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (n *node) status() (status, error) {
	var s status
	out, err := n.ctl("status", "-o", "json")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("%s: status json: %w: %q", n.name, err, out)
	}
	return s, nil
}

func (n *node) members() ([]member, error) {
	var ms []member
	out, err := n.ctl("members", "-o", "json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		return nil, fmt.Errorf("%s: members json: %w: %q", n.name, err, out)
	}
	return ms, nil
}

// view is one poll of every node's status (err set where it failed).
type view struct {
	st  []status
	err []error
}

func (c *cluster) view() view {
	v := view{st: make([]status, len(c.nodes)), err: make([]error, len(c.nodes))}
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.st[i], v.err[i] = n.status()
		}()
	}
	wg.Wait()
	return v
}

func (v view) String() string {
	var b strings.Builder
	for i, s := range v.st {
		if v.err[i] != nil {
			fmt.Fprintf(&b, "[n%d: %v] ", i+1, v.err[i])
			continue
		}
		fmt.Fprintf(&b, "[%s role=%s active=%s health=%s members=%d irc=%v store=%v/%s entries=%d digest=%.12s] ",
			s.Name, s.Role, s.Active, s.Health, s.Members, s.IRC.Connected, s.Store.Healthy, s.Store.Reason, s.Store.Entries, s.Store.Digest)
	}
	return b.String()
}

// merged: every node answers and counts all 3 members alive.
func (v view) merged() bool {
	for i, s := range v.st {
		if v.err[i] != nil || s.Members != 3 {
			return false
		}
	}
	return true
}

// steady: merged, everyone healthy with one store digest, n1 active in
// every view and IRC connected everywhere.
func (v view) steady() bool {
	if !v.merged() {
		return false
	}
	for _, s := range v.st {
		if s.Active != "n1" || s.Health != "ok" || !s.Store.Healthy || !s.IRC.Connected || s.Store.Digest != v.st[0].Store.Digest {
			return false
		}
	}
	return true
}

// sameDigest: every node answers with a healthy store and one digest.
func (v view) sameDigest() bool {
	for i, s := range v.st {
		if v.err[i] != nil || !s.Store.Healthy || s.Store.Digest == "" || s.Store.Digest != v.st[0].Store.Digest {
			return false
		}
	}
	return true
}

// waitView polls the cluster every 200ms until cond holds; it returns the
// time it took and the last view, or an error with the last view.
func (c *cluster) waitView(timeout time.Duration, cond func(view) bool) (time.Duration, view, error) {
	start := time.Now()
	var v view
	for {
		v = c.view()
		if cond(v) {
			return time.Since(start), v, nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), v, fmt.Errorf("not reached within %s; last view: %s", timeout, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitFor polls f every 100ms until it returns true or timeout passes.
func waitFor(timeout time.Duration, f func() (bool, error)) (time.Duration, error) {
	start := time.Now()
	for {
		ok, err := f()
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			if err == nil {
				err = errors.New("condition false")
			}
			return time.Since(start), fmt.Errorf("not reached within %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// corruptDB overwrites the node's Badger MANIFEST and every .sst, .vlog and
// .mem file with garbage (the node must be stopped).
func (n *node) corruptDB(t *testing.T) int {
	t.Helper()
	db := filepath.Join(n.dataDir, "db")
	entries, err := os.ReadDir(db)
	if err != nil {
		t.Fatalf("read %s: %v", db, err)
	}
	hit := 0
	for _, e := range entries {
		name := e.Name()
		if name != "MANIFEST" && !strings.HasSuffix(name, ".sst") && !strings.HasSuffix(name, ".vlog") && !strings.HasSuffix(name, ".mem") {
			continue
		}
		garbage := make([]byte, 64*1024)
		_, _ = rand.Read(garbage)
		if err := os.WriteFile(filepath.Join(db, name), garbage, 0o644); err != nil {
			t.Fatalf("corrupt %s: %v", name, err)
		}
		hit++
	}
	if hit == 0 {
		t.Fatalf("nothing to corrupt in %s (%d entries)", db, len(entries))
	}
	return hit
}
