// Command ircbench measures IRC failover with the real binaries: it runs
// ngircd, three meshbot nodes (ranks 1..3, profile fast) and an observer
// client in #test, asks a new factoid question every -interval, applies a
// fault to the active bot's process (crash = SIGKILL, freeze = SIGSTOP for
// 20 s then SIGCONT, term = SIGTERM) and prints a markdown table of the
// failover time (fault to the first answer by another bot), double answers,
// lost questions and answer latency. The failover time has the resolution
// of -interval (it needs a question to answer); the observer's transcript
// (questions, answers, JOIN/PART/QUIT, fault marks) is in the work
// directory, kept with -keep.
//
//	make build && go run ./cmd/internal/ircbench -runs 20
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meshbot/meshbot/cmd/internal/ctlapi"
	"github.com/meshbot/meshbot/e2e/irctest"
)

const (
	ngircdPath   = "/usr/sbin/ngircd"
	testChan     = "#test"
	obsNick      = "watcher"
	numFactoids  = 1000
	warmup       = 2 * time.Second  // asking before the fault
	afterFault   = 10 * time.Second // asking after a crash/term
	freezeFor    = 20 * time.Second // SIGSTOP .. SIGCONT
	afterResume  = 5 * time.Second  // asking after SIGCONT
	lostAfter    = 5 * time.Second  // unanswered this long after asking stopped = lost
	crashGap     = 3 * time.Second  // crash: questions asked before kill+crashGap are "gap"
	stableWithin = 120 * time.Second
)

// ---------------------------------------------------------------- processes

// procs holds every running child so that all of them (and their process
// groups) can be killed on exit or Ctrl-C.
var procs = struct {
	sync.Mutex
	m map[*exec.Cmd]chan struct{}
}{m: map[*exec.Cmd]chan struct{}{}}

// spawn starts a command in its own process group with output to logPath
// (appended) and returns a channel closed when it exits.
func spawn(logPath string, name string, args ...string) (*exec.Cmd, chan struct{}, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(logf, "==== ircbench: start %s at %s\n", name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	procs.Lock()
	procs.m[cmd] = done
	procs.Unlock()
	go func() {
		cmd.Wait()
		logf.Close()
		procs.Lock()
		delete(procs.m, cmd)
		procs.Unlock()
		close(done)
	}()
	return cmd, done, nil
}

// killAll SIGKILLs every child's process group (stopped ones too) and waits
// for them.
func killAll() {
	procs.Lock()
	var dones []chan struct{}
	for cmd, done := range procs.m {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		dones = append(dones, done)
	}
	procs.Unlock()
	for _, d := range dones {
		select {
		case <-d:
		case <-time.After(5 * time.Second):
		}
	}
}

// freePort returns a port free on 127.0.0.1 for both TCP and UDP.
func freePort(used map[int]bool) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil || used[port] {
			continue
		}
		u.Close()
		used[port] = true
		return port, nil
	}
	return 0, errors.New("no free TCP+UDP port")
}

// poll calls f every interval until it returns nil or timeout passes
// (then it returns f's last error).
func poll(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// ---------------------------------------------------------------- nodes

type node struct {
	name, nick string
	rank       int
	cfgPath    string
	logPath    string
	c          *ctlapi.Client
	cmd        *exec.Cmd
	done       chan struct{}
}

func (n *node) start(bin string) error {
	cmd, done, err := spawn(n.logPath, filepath.Join(bin, "meshbot"), "run", "-config", n.cfgPath)
	if err != nil {
		return err
	}
	n.cmd, n.done = cmd, done
	return nil
}

func (n *node) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *node) signal(sig syscall.Signal) error {
	return syscall.Kill(n.cmd.Process.Pid, sig)
}

// wait waits up to timeout for the process to exit.
func (n *node) wait(timeout time.Duration) bool {
	select {
	case <-n.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// bench is the running setup.
type bench struct {
	bin      string
	work     string
	interval time.Duration
	nodes    []*node
	obs      *observer
	// transcript is the observer's log (work dir, kept with -keep).
	transcript *os.File
	next       atomic.Int64 // question counter (wraps at numFactoids)
}

// take returns the next factoid name; q000..q999 wrap after numFactoids
// questions, far more than 30 s (the bot's repeat filter) at any interval.
func (b *bench) take() string {
	return fmt.Sprintf("q%03d", (b.next.Add(1)-1)%numFactoids)
}

func (b *bench) setup() error {
	port := map[int]bool{}
	ircPort, err := freePort(port)
	if err != nil {
		return err
	}
	conf := irctest.NgircdConfig("irc.bench.test", "127.0.0.1", ircPort)
	confPath := filepath.Join(b.work, "ngircd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(ngircdPath, "--configtest", "-f", confPath).CombinedOutput(); err != nil {
		return fmt.Errorf("ngircd --configtest: %w\n%s", err, out)
	}
	_, ircDone, err := spawn(filepath.Join(b.work, "ngircd.log"), ngircdPath, "-n", "-f", confPath)
	if err != nil {
		return err
	}
	ircAddr := fmt.Sprintf("127.0.0.1:%d", ircPort)
	if err := poll(15*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-ircDone:
			return errors.New("ngircd exited (see ngircd.log)")
		default:
		}
		c, err := net.DialTimeout("tcp", ircAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		return fmt.Errorf("ngircd: %w", err)
	}

	key, err := exec.Command(filepath.Join(b.bin, "meshbot"), "keygen").Output()
	if err != nil {
		return fmt.Errorf("meshbot keygen: %w", err)
	}
	keyPath := filepath.Join(b.work, "gossip.key")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		return err
	}
	var gossip []string
	for range 3 {
		p, err := freePort(port)
		if err != nil {
			return err
		}
		gossip = append(gossip, fmt.Sprintf("127.0.0.1:%d", p))
	}
	for i := range 3 {
		n := &node{name: fmt.Sprintf("b%d", i+1), nick: fmt.Sprintf("b%d", i+1), rank: i + 1}
		dir := filepath.Join(b.work, n.name)
		n.cfgPath, n.logPath = filepath.Join(b.work, n.name+".yaml"), filepath.Join(b.work, n.name+".log")
		n.c = &ctlapi.Client{Socket: filepath.Join(dir, "meshbot.sock")}
		join := slices.Delete(slices.Clone(gossip), i, i+1)
		cfg := fmt.Sprintf(`name: %s
rank: %d
data_dir: %s
mesh:
  bind: %s
  join: [%s]
  key_file: %s
  profile: fast
  failback: preempt
  preempt_delay: 3s
store:
  sync_interval: 500ms
  snapshot_every: 0s
log:
  level: debug
irc:
  servers: [%s]
  nick: %s
  bot_channel: "#bots"
  channels: ["%s"]
  hedge: 1500ms
  ping_interval: 1s
  handoff_timeout: 10s
editors: ["*!*@*"]
`, n.name, n.rank, dir, gossip[i], strings.Join(join, ", "), keyPath, ircAddr, n.nick, testChan)
		if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
			return err
		}
		if err := n.start(b.bin); err != nil {
			return err
		}
		b.nodes = append(b.nodes, n)
	}
	if err := poll(60*time.Second, 200*time.Millisecond, func() error {
		_, err := b.meshState()
		return err
	}); err != nil {
		return fmt.Errorf("mesh did not form: %w", err)
	}
	if err := b.seed(); err != nil {
		return err
	}
	tr, err := os.Create(filepath.Join(b.work, "transcript.txt"))
	if err != nil {
		return err
	}
	b.transcript = tr
	b.obs, err = dialObserver(ircAddr, obsNick, testChan, tr)
	return err
}

// seed sets q000..q999 on the first node and waits until every node holds
// the same store.
func (b *bench) seed() error {
	t0 := time.Now()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < numFactoids; i += 4 {
				name := fmt.Sprintf("q%03d", i)
				if _, err := b.nodes[0].c.SetFactoid(ctx, name, "ans-"+name, "ircbench"); err != nil {
					errs <- fmt.Errorf("seed %s: %w", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	err := poll(60*time.Second, 200*time.Millisecond, func() error {
		var digests []string
		for _, n := range b.nodes {
			s, err := n.c.Status(ctx)
			if err != nil {
				return err
			}
			if s.Store.Entries < numFactoids {
				return fmt.Errorf("%s holds %d entries", n.name, s.Store.Entries)
			}
			digests = append(digests, s.Store.Digest)
		}
		if len(slices.Compact(slices.Clone(digests))) != 1 {
			return fmt.Errorf("digests differ: %v", digests)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seeded factoids did not converge: %w", err)
	}
	fmt.Fprintf(os.Stderr, "ircbench: seeded %d factoids in %s\n", numFactoids, time.Since(t0).Round(time.Millisecond))
	return nil
}

// meshState checks that every node runs and sees all three alive, all
// connected to IRC, and the same single active node, and returns it.
func (b *bench) meshState() (*node, error) {
	active := ""
	for _, n := range b.nodes {
		if !n.running() {
			return nil, fmt.Errorf("%s is not running", n.name)
		}
		ms, err := n.c.Members(context.Background())
		if err != nil {
			return nil, err
		}
		var acts []string
		alive := 0
		for _, m := range ms {
			if m.Status == "alive" && m.IRCConnected {
				alive++
			}
			if m.Role == "active" {
				acts = append(acts, m.Name)
			}
		}
		if alive != len(b.nodes) || len(acts) != 1 || (active != "" && acts[0] != active) {
			return nil, fmt.Errorf("%s sees %d alive+connected, active %v (others: %q)", n.name, alive, acts, active)
		}
		active = acts[0]
	}
	for _, n := range b.nodes {
		if n.name == active {
			return n, nil
		}
	}
	return nil, fmt.Errorf("active %q is not one of the nodes", active)
}

// waitStable waits until the mesh agrees on the best-ranked node as active
// (preempt failback: that is the steady state), only its bot is in #test,
// and it answers a question.
func (b *bench) waitStable() (*node, error) {
	var active *node
	err := poll(stableWithin, 250*time.Millisecond, func() error {
		a, err := b.meshState()
		if err != nil {
			return err
		}
		if a != b.nodes[0] {
			return fmt.Errorf("active is %s, waiting for %s to take the role back", a.name, b.nodes[0].name)
		}
		bots, err := b.obs.channelBots()
		if err != nil {
			return err
		}
		if !slices.Equal(bots, []string{a.nick}) {
			return fmt.Errorf("%s holds %v, want only %s", testChan, bots, a.nick)
		}
		q := b.obs.ask(b.take())
		if err := poll(5*time.Second, 50*time.Millisecond, func() error {
			for _, x := range b.obs.answersSince(q.At) {
				if x.Name == q.Name && x.From == a.nick {
					return nil
				}
			}
			return fmt.Errorf("probe !%s not answered by %s", q.Name, a.nick)
		}); err != nil {
			return err
		}
		active = a
		return nil
	})
	return active, err
}

// run applies one fault to the active bot and measures it.
func (b *bench) run(scenario string) (runResult, error) {
	victim, err := b.waitStable()
	if err != nil {
		return runResult{}, fmt.Errorf("mesh not stable before the run: %w", err)
	}
	start := time.Now()
	a := startAsker(b.obs, b.interval, b.take)
	time.Sleep(warmup)
	fault := time.Now()
	b.obs.mark(fault, fmt.Sprintf("FAULT %s %s", scenario, victim.name))
	w := runWindow{Fault: fault, Victim: victim.nick}
	switch scenario {
	case "crash":
		err = victim.signal(syscall.SIGKILL)
		w.GapEnd = fault.Add(crashGap)
	case "term":
		err = victim.signal(syscall.SIGTERM)
	case "freeze":
		err = victim.signal(syscall.SIGSTOP)
	}
	if err != nil {
		a.Stop()
		return runResult{}, fmt.Errorf("signal %s: %w", victim.name, err)
	}
	if scenario == "freeze" {
		time.Sleep(freezeFor)
		b.obs.mark(time.Now(), "SIGCONT "+victim.name)
		if err := victim.signal(syscall.SIGCONT); err != nil {
			a.Stop()
			return runResult{}, fmt.Errorf("SIGCONT %s: %w", victim.name, err)
		}
		time.Sleep(afterResume)
	} else {
		time.Sleep(afterFault)
	}
	asked := a.Stop()
	b.obs.mark(time.Now(), "STOP asking")
	w.Deadline = time.Now().Add(lostAfter)
	time.Sleep(lostAfter)

	// Restore: restart a dead victim, then wait for the steady state again
	// (the next run's waitStable would too, but late double answers to this
	// run's questions are counted up to that point).
	if scenario != "freeze" {
		if !victim.wait(30 * time.Second) {
			return runResult{}, fmt.Errorf("%s still running 30 s after %s", victim.name, scenario)
		}
		if code := victim.cmd.ProcessState.ExitCode(); scenario == "term" && code != 0 {
			fmt.Fprintf(os.Stderr, "ircbench: %s exited with code %d after SIGTERM\n", victim.name, code)
		}
		b.obs.mark(time.Now(), "RESTART "+victim.name)
		if err := victim.start(b.bin); err != nil {
			return runResult{}, err
		}
	}
	if _, err := b.waitStable(); err != nil {
		return runResult{}, fmt.Errorf("mesh not stable after the run: %w", err)
	}
	r := analyze(asked, b.obs.answersSince(start), w)
	return r, nil
}

func main() {
	runs := flag.Int("runs", 5, "fault injections per scenario")
	bin := flag.String("bin", "bin", "directory with the meshbot binary")
	scenarios := flag.String("scenarios", "crash,freeze,term", "comma-separated: crash (SIGKILL), freeze (SIGSTOP 20 s), term (SIGTERM)")
	// 500ms, not faster: the bot sends at most 2 lines/s (bot.DefaultConfig
	// SendRate, not configurable), so a faster asker measures the growing
	// send queue instead of the failover.
	interval := flag.Duration("interval", 500*time.Millisecond, "time between questions")
	keep := flag.Bool("keep", false, "keep the work directory (configs and node logs)")
	flag.Parse()
	var list []string
	for _, s := range strings.Split(*scenarios, ",") {
		s = strings.TrimSpace(s)
		if s != "crash" && s != "freeze" && s != "term" {
			fmt.Fprintf(os.Stderr, "ircbench: unknown scenario %q (want crash, freeze or term)\n", s)
			os.Exit(2)
		}
		list = append(list, s)
	}
	if *runs < 1 || *interval <= 0 {
		fmt.Fprintln(os.Stderr, "ircbench: -runs and -interval must be positive")
		os.Exit(2)
	}
	if _, err := os.Stat(ngircdPath); err != nil {
		fmt.Fprintf(os.Stderr, "ircbench: %v: install ngircd: apt-get install -y ngircd\n", err)
		os.Exit(1)
	}
	work, err := os.MkdirTemp("", "ircbench-")
	if err == nil {
		err = os.Chmod(work, 0o755) // ngircd as root drops to nobody and must read its config
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ircbench:", err)
		os.Exit(1)
	}
	cleanup := func() {
		killAll()
		if *keep {
			fmt.Fprintf(os.Stderr, "ircbench: kept %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "ircbench: %v: stopping\n", s)
		cleanup()
		os.Exit(130)
	}()
	code := 0
	if err := bench1(&bench{bin: *bin, work: work, interval: *interval}, list, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "ircbench:", err)
		code = 1
	}
	signal.Stop(sigs)
	cleanup()
	os.Exit(code)
}

// bench1 sets up the mesh and runs every scenario, printing the table (also
// the rows measured before an error).
func bench1(b *bench, scenarios []string, runs int) error {
	fmt.Fprintf(os.Stderr, "ircbench: work dir %s\n", b.work)
	defer func() {
		if b.obs != nil {
			b.obs.Close()
		}
		if b.transcript != nil {
			b.transcript.Close()
		}
	}()
	if err := b.setup(); err != nil {
		return err
	}
	var stats []*scenarioStats
	defer func() {
		fmt.Printf("\n`go run ./cmd/internal/ircbench %s` (3 nodes, profile fast, preempt_delay 3s, hedge 1500ms, a question every %s)\n\n",
			strings.Join(os.Args[1:], " "), b.interval)
		fmt.Println(tableHeader)
		for _, s := range stats {
			fmt.Println(s.row())
		}
	}()
	for _, sc := range scenarios {
		s := &scenarioStats{Name: sc}
		stats = append(stats, s)
		for i := range runs {
			r, err := b.run(sc)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", sc, i+1, err)
			}
			s.add(r)
			fmt.Fprintf(os.Stderr, "ircbench: %s run %d/%d: failover %s, asked %d, latency median %s, doubles %v, lost %v (late %v), gap %v\n",
				sc, i+1, runs, fmtDur(r.Failover, r.FailedOK), r.Asked, fmtDur(percentile(r.Latencies, 50), len(r.Latencies) > 0),
				r.Doubles, r.Lost, r.Late, r.Gap)
		}
	}
	return nil
}
