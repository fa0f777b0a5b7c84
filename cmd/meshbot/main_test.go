package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunCommands(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknown := write("unknown.yaml", "name: a\nmesh:\n  profle: fast\n")
	baddur := write("baddur.yaml", "name: a\nmesh:\n  preempt_delay: soon\n")
	nokey := write("nokey.yaml", "name: a\ndata_dir: "+dir+"/d\nmesh:\n  key_file: "+dir+"/missing.key\n")
	tests := []struct {
		args    []string
		wantErr string
		usage   bool
		wantOut string
	}{
		{args: []string{"version"}, wantOut: "dev"},
		{args: []string{}, wantErr: "no command", usage: true},
		{args: []string{"frob"}, wantErr: `unknown command "frob"`, usage: true},
		{args: []string{"run"}, wantErr: "run needs -config", usage: true},
		{args: []string{"run", "-config", unknown}, wantErr: `unknown key "profle" in section mesh`},
		{args: []string{"run", "-config", baddur}, wantErr: `bad duration "soon"`},
		{args: []string{"run", "-config", nokey}, wantErr: "mesh.key_file"},
		{args: []string{"run", "-config", filepath.Join(dir, "none.yaml")}, wantErr: "no such file"},
		{args: []string{"run", "-config", unknown, "-rank", "x"}, wantErr: "invalid value", usage: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := Run(context.Background(), tt.args, &out, &errb)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out.String(), tt.wantOut) {
					t.Errorf("stdout %q lacks %q", out.String(), tt.wantOut)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			var ue usageError
			if errors.As(err, &ue) != tt.usage {
				t.Errorf("usage error = %v, want %v", !tt.usage, tt.usage)
			}
		})
	}
}

func TestKeygen(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"keygen"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out.String()))
	if err != nil || len(key) != 32 {
		t.Fatalf("keygen printed %q (%d bytes, %v)", out.String(), len(key), err)
	}
}
