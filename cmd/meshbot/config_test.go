package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; "" = no error
		check   func(t *testing.T, c Config)
	}{
		{name: "empty file is all defaults", yaml: "", check: func(t *testing.T, c Config) {
			if c.Mesh.Profile != "lan" || c.Mesh.PreemptDelay.D() != 30*time.Second || c.Store.SnapshotKeep != 7 {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{name: "full", yaml: `
name: ubotu
rank: 2
data_dir: /tmp/x
mesh:
  bind: 127.0.0.1:7946
  join: [127.0.0.1:7947]
  profile: fast
  failback: sticky
  preempt_delay: 1500ms
irc:
  servers: [irc.example.net:6697]
  tls: true
  bot_channel: "#bots"
  hedge: 2s
editors: ["*!*@ubuntu/member/*"]
`, check: func(t *testing.T, c Config) {
			if c.Name != "ubotu" || c.Rank != 2 || c.Mesh.PreemptDelay.D() != 1500*time.Millisecond {
				t.Errorf("got %+v", c)
			}
			if c.IRC == nil || c.IRC.Hedge.D() != 2*time.Second || !c.IRC.TLS {
				t.Errorf("irc: %+v", c.IRC)
			}
		}},
		{name: "unknown top-level key", yaml: "nmae: x\n", wantErr: `unknown key "nmae" in top level`},
		{name: "unknown mesh key", yaml: "mesh:\n  bnid: 1.2.3.4:5\n", wantErr: `unknown key "bnid" in section mesh`},
		{name: "unknown irc key", yaml: "irc:\n  nickname: x\n", wantErr: `unknown key "nickname" in section irc`},
		{name: "bad duration", yaml: "mesh:\n  preempt_delay: 30 seconds\n", wantErr: `bad duration "30 seconds"`},
		{name: "unitless duration", yaml: "irc:\n  hedge: 1500\n", wantErr: `bad duration "1500"`},
		{name: "negative duration", yaml: "mesh:\n  preempt_delay: -1s\n", wantErr: "negative duration"},
		{name: "wrong type", yaml: "rank: first\n", wantErr: "rank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			err := parseConfig([]byte(tt.yaml), &c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Name = "n1"
		c.DataDir = t.TempDir()
		return c
	}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "ok", mod: func(*Config) {}},
		{name: "bad name", mod: func(c *Config) { c.Name = "a b" }, wantErr: `name "a b"`},
		{name: "rank zero", mod: func(c *Config) { c.Rank = 0 }, wantErr: "rank 0"},
		{name: "bad bind", mod: func(c *Config) { c.Mesh.Bind = "localhost" }, wantErr: "mesh.bind"},
		{name: "bad join", mod: func(c *Config) { c.Mesh.Join = []string{"10.0.0.1"} }, wantErr: "mesh.join"},
		{name: "bad profile", mod: func(c *Config) { c.Mesh.Profile = "turbo" }, wantErr: "mesh.profile"},
		{name: "bad failback", mod: func(c *Config) { c.Mesh.Failback = "never" }, wantErr: "mesh.failback"},
		{name: "listen without token", mod: func(c *Config) { c.Control.Listen = "127.0.0.1:9000" }, wantErr: "token_file"},
		{name: "irc without servers", mod: func(c *Config) { c.IRC = &IRCConfig{BotChannel: "#b"} }, wantErr: "irc.servers"},
		{name: "irc without bot channel", mod: func(c *Config) { c.IRC = &IRCConfig{Servers: []string{"h:6667"}} }, wantErr: "irc.bot_channel"},
		{name: "sasl without password", mod: func(c *Config) {
			c.IRC = &IRCConfig{Servers: []string{"h:6667"}, BotChannel: "#b", SASLUser: "u"}
		}, wantErr: "sasl_password_file"},
		{name: "bad log level", mod: func(c *Config) { c.Log.Level = "loud" }, wantErr: "log.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Control.Socket != filepath.Join(c.DataDir, "meshbot.sock") {
					t.Errorf("socket default = %q", c.Control.Socket)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestIRCDefaults(t *testing.T) {
	c := DefaultConfig()
	c.Name = "n2"
	c.DataDir = t.TempDir()
	c.IRC = &IRCConfig{Servers: []string{"127.0.0.1:6667"}, BotChannel: "#bots"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.IRC.Nick != "n2" || c.IRC.RelayChannel != "#bots" || c.IRC.Prefix != "!" || c.IRC.Hedge.D() != 1500*time.Millisecond {
		t.Errorf("irc defaults: %+v", c.IRC)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("name: fromfile\nrank: 3\nmesh:\n  join: [a:1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	Flags{Name: "fromflag", Rank: 2, Join: "b:2, c:3", Data: dir}.Apply(&c)
	if c.Name != "fromflag" || c.Rank != 2 || c.DataDir != dir || len(c.Mesh.Join) != 2 || c.Mesh.Join[1] != "c:3" {
		t.Errorf("flags not applied: %+v", c)
	}
}

func TestNewDaemonKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, keyFile, wantErr string
	}{
		{"missing", filepath.Join(dir, "nope.key"), "no such file"},
		{"empty", write("empty.key", "\n"), "is empty"},
		{"not base64", write("bad.key", "!!!"), "not valid base64"},
		{"wrong length", write("short.key", "c2hvcnQ="), "want 16, 24 or 32"},
		{"ok", write("ok.key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Name = "n"
			c.DataDir = filepath.Join(dir, "data")
			c.Mesh.KeyFile = tt.keyFile
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			_, err := NewDaemon(c, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "mesh.key_file") {
				t.Fatalf("err = %v, want mesh.key_file ... %q", err, tt.wantErr)
			}
		})
	}
}
