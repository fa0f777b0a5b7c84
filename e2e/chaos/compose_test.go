//go:build chaos

package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshbot/meshbot/e2e/irctest"
)

// TestCompose brings up deploy/compose.yaml (three mesh-only nodes) with the
// FROM scratch image and checks that the nodes form a mesh with exactly one
// active node, as an operator following the compose file's header would.
func TestCompose(t *testing.T) {
	composeCmd := []string{"docker-compose"}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
			t.Fatalf("neither docker-compose nor 'docker compose' works: %v\n%s", err, out)
		}
		composeCmd = []string{"docker", "compose"}
	}
	root, err := irctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var rb [3]byte
	_, _ = rand.Read(rb[:])
	c := &cluster{prefix: "mbcompose-" + hex.EncodeToString(rb[:]), root: root}
	c.dir, err = os.MkdirTemp("", c.prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(c.dir) })
	c.buildImage(t)
	t.Cleanup(func() { _, _ = docker("rmi", "-f", c.image) })

	key, err := exec.Command(filepath.Join(c.dir, "image", "bin", "meshbot"), "keygen").Output()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(c.dir, "gossip.key")
	if err := os.WriteFile(keyFile, key, 0o644); err != nil { // the container user (65532) reads it
		t.Fatal(err)
	}
	env := []string{"MESHBOT_IMAGE=" + c.image, "MESHBOT_GOSSIP_KEY=" + keyFile}
	compose := func(args ...string) (string, error) {
		full := append(append(composeCmd[1:], "-p", c.prefix, "-f", filepath.Join(root, "deploy", "compose.yaml")), args...)
		return run(dockerTime, env, composeCmd[0], full...)
	}
	t.Cleanup(func() {
		if out, err := compose("down", "-v", "-t", "5"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	if out, err := compose("up", "-d", "--no-build"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := compose("exec", "-T", "node2", "/meshctl", "members", "-o", "json")
		var ms []struct{ Name, Status, Role string }
		alive, active := 0, []string{}
		if err == nil && json.Unmarshal([]byte(out), &ms) == nil {
			for _, m := range ms {
				if m.Status == "alive" {
					alive++
				}
				if m.Role == "active" {
					active = append(active, m.Name)
				}
			}
		}
		if alive == 3 && len(active) == 1 && active[0] == "node1" {
			t.Logf("compose mesh formed: %s", out)
			return
		}
		if time.Now().After(deadline) {
			logs, _ := compose("logs", "--tail", "20")
			t.Fatalf("compose nodes did not form a mesh within 60s (alive %d, active %v, err %v)\n%s\n%s", alive, active, err, out, logs)
		}
		time.Sleep(time.Second)
	}
}
