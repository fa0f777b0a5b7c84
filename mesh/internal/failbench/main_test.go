package main

import (
	"strings"
	"testing"
)

// TestFailbenchSmoke runs the smallest measurement on real loopback
// sockets and checks that a table row comes out.
func TestFailbenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("opens real sockets and waits for a failover")
	}
	var out strings.Builder
	if err := run([]string{"-profiles", "fast", "-n", "3", "-reps", "1"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| fast | 3 |") {
		t.Fatalf("no row for fast/3 in:\n%s", out.String())
	}
}

func TestFailbenchBadFlags(t *testing.T) {
	if err := run([]string{"-n", "1"}, &strings.Builder{}); err == nil {
		t.Error("-n 1 accepted")
	}
}
