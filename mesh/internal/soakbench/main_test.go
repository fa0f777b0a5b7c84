package main

import (
	"strings"
	"testing"
)

func TestSoakSmoke(t *testing.T) {
	var out strings.Builder
	if err := run([]string{"-n", "3", "-loss", "0", "-for", "500ms"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| 3 | fast | 0.0 % | 500ms | 0 | 0 |") {
		t.Fatalf("unexpected table:\n%s", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-n", "1"}, {"-loss", "1"}, {"-for", "0s"}} {
		if err := run(args, &strings.Builder{}); err == nil {
			t.Errorf("run(%v) accepted bad flags", args)
		}
	}
}
