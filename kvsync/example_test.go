package kvsync_test

import (
	"fmt"

	"github.com/meshbot/meshbot/kvsync"
)

func Example() {
	cfg := kvsync.DefaultConfig()
	cfg.Node, cfg.InMemory = "ubotu", true // tests: no disk
	s, err := kvsync.Open(cfg)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	// s.SetTransport(meshAdapter); s.Start() in the daemon.
	if _, err := s.SetFactoid("Ubuntu", "Ubuntu is a Linux distribution", "alice!a@host"); err != nil {
		panic(err)
	}
	f, _ := s.GetFactoid("UBUNTU")
	fmt.Println(f.Name, "=", f.Value)
	_, err = s.SetFactoid("bad", "two\nlines", "alice")
	fmt.Println(err)
	// Output:
	// ubuntu = Ubuntu is a Linux distribution
	// invalid: factoid value contains NUL, CR or LF at byte 3
}
