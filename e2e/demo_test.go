package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshbot/meshbot/e2e/irctest"
)

// portsFree reports whether TCP and UDP ports p..p+n-1 on 127.0.0.1 are free.
func portsFree(p, n int) bool {
	for i := range n {
		a := fmt.Sprintf("127.0.0.1:%d", p+i)
		l, err := net.Listen("tcp", a)
		if err != nil {
			return false
		}
		u, err := net.ListenPacket("udp", a)
		l.Close()
		if err != nil {
			return false
		}
		u.Close()
	}
	return true
}

// TestDemo runs `make demo`'s script as the README's first command does, in
// its self-checking mode: it must bring up ngircd and three bots, and a bot
// must answer a factoid in the demo channel.
func TestDemo(t *testing.T) {
	root, err := irctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	base := 0
	for p := 31000; p < 40000; p += 7 {
		if portsFree(p, 3) {
			base = p
			break
		}
	}
	if base == 0 {
		t.Fatal("no three consecutive free ports for the demo's gossip")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "deploy", "demo.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"DEMO_EXIT=1",
		"BIN="+filepath.Dir(meshbotBin),
		"DEMO_IRC_PORT="+strconv.Itoa(freePort(t)),
		"DEMO_GOSSIP_BASE="+strconv.Itoa(base),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{"PRIVMSG #meshbot :meshbot is a mesh of IRC factoid bots", "node1", "active", "The mesh is up"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
