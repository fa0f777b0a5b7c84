// Command soakbench counts false failovers: it runs N in-process nodes on
// the in-memory network of mesh/meshtest with packet and stream loss, kills
// nothing, and reports every failure declaration and every change of the
// active node (all of them false) over the run.
//
//	go run ./mesh/internal/soakbench -n 10 -loss 0.01 -for 10m -profile fast
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/mesh/meshtest"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "soakbench:", err)
		os.Exit(1)
	}
}

// result is what one soak run observed.
type result struct {
	n                  int
	profile            string
	loss               float64
	dur                time.Duration
	failovers, fails   uint64 // summed over all nodes
	disagreementChecks int    // samples in which nodes named different actives
	samples            int
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("soakbench", flag.ContinueOnError)
	n := fs.Int("n", 10, "nodes")
	loss := fs.Float64("loss", 0.01, "packet and stream loss probability (0..1)")
	dur := fs.Duration("for", 10*time.Minute, "how long to run")
	profile := fs.String("profile", mesh.ProfileFast, "mesh profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 2 || *loss < 0 || *loss >= 1 || *dur <= 0 {
		return fmt.Errorf("need -n >= 2, 0 <= -loss < 1, -for > 0")
	}
	r, err := soak(*n, *profile, *loss, *dur)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| nodes | profile | loss | duration | false failovers | false failure declarations | samples with disagreement |\n|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(out, "| %d | %s | %.1f %% | %s | %d | %d | %d of %d |\n",
		r.n, r.profile, r.loss*100, r.dur, r.failovers, r.fails, r.disagreementChecks, r.samples)
	return nil
}

func soak(n int, profile string, loss float64, dur time.Duration) (result, error) {
	res := result{n: n, profile: profile, loss: loss, dur: dur}
	network := meshtest.NewNetwork(uint64(time.Now().UnixNano()))
	var nodes []*mesh.Mesh
	defer func() {
		for _, m := range nodes {
			_ = m.Shutdown()
		}
	}()
	seed := ""
	for i := 1; i <= n; i++ {
		cfg := mesh.DefaultConfig()
		cfg.Name = fmt.Sprintf("n%02d", i)
		cfg.Rank = i
		cfg.Profile = profile
		tr := network.NewTransport(cfg.Name)
		cfg.Transport = tr
		if seed != "" {
			cfg.Join = []string{seed}
		}
		m, err := mesh.New(cfg)
		if err != nil {
			return res, err
		}
		m.UpdateMeta(func(mt *mesh.Meta) { mt.Health = mesh.HealthOK })
		if err := m.Start(); err != nil {
			return res, err
		}
		nodes = append(nodes, m)
		if seed == "" {
			seed = tr.Addr()
		}
	}
	// Wait for the mesh to form before the loss starts.
	deadline := time.Now().Add(time.Minute)
	for {
		formed := true
		for _, m := range nodes {
			if len(m.Peers()) != n-1 || m.Active() != "n01" {
				formed = false
			}
		}
		if formed {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("mesh of %d did not form within a minute", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	base := make([]mesh.Stats, n)
	for i, m := range nodes {
		base[i] = m.Stats()
	}
	baseFails := countFails(nodes)
	network.SetLoss(loss)
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		res.samples++
		for _, m := range nodes {
			if m.Active() != "n01" {
				res.disagreementChecks++
				break
			}
		}
	}
	for i, m := range nodes {
		res.failovers += m.Stats().Failovers - base[i].Failovers
	}
	res.fails = countFails(nodes) - baseFails
	return res, nil
}

// countFails sums the failure declarations ("fail" events) of all nodes.
func countFails(nodes []*mesh.Mesh) uint64 {
	var c uint64
	for _, m := range nodes {
		for _, e := range m.Events(100000) {
			if e.Type == mesh.EventFail {
				c++
			}
		}
	}
	return c
}
