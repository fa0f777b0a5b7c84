// Command failbench measures failover, graceful-leave propagation and join
// times of the mesh package on the real network (UDP/TCP on 127.0.0.1)
// with N in-process nodes per profile, and prints a markdown table.
//
//	go run ./mesh/internal/failbench [-profiles fast,lan,wan] [-n 3,10,50] [-reps 5]
//
// For each profile and N it starts N nodes (ranks 1..N, preempt delay 0),
// then measures, -reps times each:
//   - failover: shuts the active node down without leaving; time until
//     every survivor agrees on the next node as active. The killed node is
//     restarted (same name and address) before the next repetition;
//   - join: starts one extra node joining the seeds and times until every
//     node sees it alive (Start included);
//   - leave: that node leaves gracefully; time from calling Leave until
//     every other node sees it as left.
//
// lan uses -slow-reps and wan -wan-reps repetitions because their failure
// detection takes seconds.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "failbench:", err)
		os.Exit(1)
	}
}

type result struct {
	profile string
	n       int
	join    []time.Duration
	leave   []time.Duration
	fail    []time.Duration
	errs    int
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("failbench", flag.ContinueOnError)
	profiles := fs.String("profiles", "fast,lan,wan", "comma-separated profiles")
	sizes := fs.String("n", "3,10,50", "comma-separated cluster sizes")
	reps := fs.Int("reps", 5, "repetitions for the fast profile")
	slowReps := fs.Int("slow-reps", 2, "repetitions for lan")
	wanReps := fs.Int("wan-reps", 1, "repetitions for wan")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up on one measurement after this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return fmt.Errorf("bad size %q (need >= 2)", s)
		}
		ns = append(ns, n)
	}
	var results []result
	for _, p := range strings.Split(*profiles, ",") {
		p = strings.TrimSpace(p)
		r := *reps
		switch p {
		case mesh.ProfileLAN:
			r = *slowReps
		case mesh.ProfileWAN:
			r = *wanReps
		}
		for _, n := range ns {
			fmt.Fprintf(os.Stderr, "profile %s, N=%d, %d reps...\n", p, n, r)
			res, err := bench(p, n, r, *timeout)
			if err != nil {
				return fmt.Errorf("profile %s N=%d: %w", p, n, err)
			}
			results = append(results, res)
		}
	}
	fmt.Fprintln(out, "| profile | N | reps | join (median, max) | graceful leave (median, max) | failover: kill active -> all survivors agree (median, min-max) |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Fprintf(out, "| %s | %d | %d | %s, %s | %s, %s | %s, %s-%s |\n", r.profile, r.n, len(r.fail),
			ms(median(r.join)), ms(slices.Max(r.join)),
			ms(median(r.leave)), ms(slices.Max(r.leave)),
			ms(median(r.fail)), ms(slices.Min(r.fail)), ms(slices.Max(r.fail)))
	}
	return nil
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type cluster struct {
	profile string
	nodes   map[string]*mesh.Mesh
	seeds   []string
}

func (c *cluster) start(name string, rank int, bind string) (*mesh.Mesh, error) {
	cfg := mesh.DefaultConfig()
	cfg.Name = name
	cfg.Rank = rank
	cfg.Profile = c.profile
	cfg.BindAddr = bind
	cfg.PreemptDelay = 0
	cfg.Join = c.seeds
	m, err := mesh.New(cfg)
	if err != nil {
		return nil, err
	}
	m.UpdateMeta(func(mt *mesh.Meta) { mt.Health = mesh.HealthOK })
	if err := m.Start(); err != nil {
		_ = m.Shutdown()
		return nil, err
	}
	c.nodes[name] = m
	if len(c.seeds) < 3 {
		c.seeds = append(c.seeds, m.Self().Addr)
	}
	return m, nil
}

func (c *cluster) shutdown() {
	for _, m := range c.nodes {
		_ = m.Shutdown()
	}
}

var errTimeout = errors.New("timed out")

// waitAll polls until cond holds for every node in c (except skip).
func (c *cluster) waitAll(timeout time.Duration, skip string, cond func(*mesh.Mesh) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		okAll := true
		for name, m := range c.nodes {
			if name != skip && !cond(m) {
				okAll = false
				break
			}
		}
		if okAll {
			return nil
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func statusOf(m *mesh.Mesh, name string) mesh.Status {
	for _, mem := range m.Members() {
		if mem.Name == name {
			return mem.Status
		}
	}
	return ""
}

func bench(profile string, n, reps int, timeout time.Duration) (result, error) {
	res := result{profile: profile, n: n}
	c := &cluster{profile: profile, nodes: map[string]*mesh.Mesh{}}
	defer c.shutdown()
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("node%02d", i)
		if _, err := c.start(names[i], i+1, "127.0.0.1:0"); err != nil {
			return res, err
		}
	}
	if err := c.waitAll(timeout, "", func(m *mesh.Mesh) bool {
		return len(m.Peers()) == n-1 && m.Active() == names[0]
	}); err != nil {
		return res, fmt.Errorf("initial convergence: %w", err)
	}
	// Failovers first: a node that left stays in memberlist's node count
	// until it is reaped, which raises the number of suspicion
	// confirmations expected and slows failure detection in small
	// clusters; measure failover on a cluster that never had a departed
	// member (the restarted victim reuses its name and address).
	for rep := range reps {
		victim, next := names[0], names[1]
		vm := c.nodes[victim]
		vaddr := vm.Self().Addr
		t0 := time.Now()
		_ = vm.Shutdown()
		delete(c.nodes, victim)
		if err := c.waitAll(timeout, "", func(m *mesh.Mesh) bool { return m.Active() == next }); err != nil {
			return res, fmt.Errorf("failover: %w", err)
		}
		res.fail = append(res.fail, time.Since(t0))

		// Restart the victim at its address and wait until it is active
		// again.
		t0 = time.Now()
		if _, err := c.start(victim, 1, vaddr); err != nil {
			return res, err
		}
		if err := c.waitAll(timeout, "", func(m *mesh.Mesh) bool {
			return m.Active() == victim && len(m.Peers()) == n-1
		}); err != nil {
			return res, fmt.Errorf("restart: %w", err)
		}
		fmt.Fprintf(os.Stderr, "  rep %d: failover %s, restart %s\n", rep, ms(res.fail[rep]), ms(time.Since(t0)))
	}
	for rep := range reps {
		extra := fmt.Sprintf("extra%02d", rep)
		t0 := time.Now()
		if _, err := c.start(extra, n+1, "127.0.0.1:0"); err != nil {
			return res, err
		}
		if err := c.waitAll(timeout, "", func(m *mesh.Mesh) bool { return statusOf(m, extra) == mesh.StatusAlive && len(m.Peers()) == n }); err != nil {
			return res, fmt.Errorf("join: %w", err)
		}
		res.join = append(res.join, time.Since(t0))

		em := c.nodes[extra]
		t0 = time.Now()
		if err := em.Leave(5 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "leave:", err)
		}
		if err := c.waitAll(timeout, extra, func(m *mesh.Mesh) bool { return statusOf(m, extra) == mesh.StatusLeft }); err != nil {
			return res, fmt.Errorf("leave: %w", err)
		}
		res.leave = append(res.leave, time.Since(t0))
		_ = em.Shutdown()
		delete(c.nodes, extra)
		fmt.Fprintf(os.Stderr, "  rep %d: join %s, leave %s\n", rep, ms(res.join[rep]), ms(res.leave[rep]))
	}
	return res, nil
}
