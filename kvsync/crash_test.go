package kvsync

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// crashChild writes factoids forever, printing each acknowledged one.
func crashChild(dir string) {
	c := DefaultConfig()
	c.Node, c.Dir = "crash", dir
	s, err := Open(c)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		if _, err := s.SetFactoid(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i), "a"); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("ack", i)
	}
}

// TestAckedWritesSurviveKill9 kills a writer process with SIGKILL and
// checks that every write it acknowledged is there after reopening.
func TestAckedWritesSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KVSYNC_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatal(line)
		}
		if n, ok := strings.CutPrefix(line, "ack "); ok {
			last, _ = strconv.Atoi(n)
			if last == 200 {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	_ = cmd.Wait()
	if last < 200 {
		t.Fatalf("child stopped after %d acks", last)
	}
	s := openDisk(t, "crash", dir)
	if ok, reason := s.Health(); !ok {
		t.Fatalf("unhealthy after kill -9: %s", reason)
	}
	for i := 0; i <= last; i++ {
		f, err := s.GetFactoid(fmt.Sprintf("k%d", i))
		if err != nil || f.Value != fmt.Sprintf("v%d", i) {
			t.Fatalf("acknowledged write k%d lost: %v", i, err)
		}
	}
}
