package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph guards the layering of DESIGN.md: meshctl speaks only the
// control API (no memberlist, Badger or girc in the CLI), and the libraries
// mesh, kvsync and bot never import each other or the commands.
func TestImportGraph(t *testing.T) {
	const mod = "github.com/meshbot/meshbot"
	tests := []struct {
		pkg       string
		forbidden []string
	}{
		{mod + "/cmd/meshctl", []string{"github.com/hashicorp/memberlist", "github.com/dgraph-io/badger", "github.com/lrstanley/girc", mod + "/mesh", mod + "/kvsync", mod + "/bot"}},
		{mod + "/mesh", []string{mod + "/kvsync", mod + "/bot", mod + "/cmd", "github.com/dgraph-io/badger", "github.com/lrstanley/girc"}},
		{mod + "/kvsync", []string{mod + "/mesh", mod + "/bot", mod + "/cmd", "github.com/hashicorp/memberlist", "github.com/lrstanley/girc"}},
		{mod + "/bot", []string{mod + "/mesh", mod + "/kvsync", mod + "/cmd", "github.com/hashicorp/memberlist", "github.com/dgraph-io/badger"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg[len(mod)+1:], func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tt.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps %s: %v\n%s", tt.pkg, err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range tt.forbidden {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s imports %s (forbidden: %s)", tt.pkg, dep, f)
					}
				}
			}
		})
	}
}
