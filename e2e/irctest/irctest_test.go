package irctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line, nick, cmd string
		params          []string
	}{
		{":b1!b1@127.0.0.1 PRIVMSG #test :q001 is ans-q001", "b1", "PRIVMSG", []string{"#test", "q001 is ans-q001"}},
		{"PING :irc.test", "", "PING", []string{"irc.test"}},
		{":irc.test 353 obs = #c :@b1 obs", "irc.test", "353", []string{"obs", "=", "#c", "@b1 obs"}},
		{"join  #a", "", "JOIN", []string{"#a"}},
		{":lonelyprefix", "", "", nil},
		{"", "", "", nil},
	}
	for _, tt := range tests {
		nick, cmd, params := ParseLine(tt.line)
		if nick != tt.nick || cmd != tt.cmd || !slices.Equal(params, tt.params) {
			t.Errorf("ParseLine(%q) = %q %q %q, want %q %q %q", tt.line, nick, cmd, params, tt.nick, tt.cmd, tt.params)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{":a!b@c PRIVMSG #x :hi", "PING :x", ":x", " : ", "A B C :d e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, cmd, _ := ParseLine(line)
		if cmd != strings.ToUpper(cmd) {
			t.Fatalf("command %q not upper-cased", cmd)
		}
	})
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
}

// TestNgircdConfig checks the configuration with ngircd's own parser.
func TestNgircdConfig(t *testing.T) {
	if _, err := os.Stat(NgircdPath); err != nil {
		t.Fatalf("ngircd missing (%v): install it with apt-get install -y ngircd", err)
	}
	conf := filepath.Join(t.TempDir(), "ngircd.conf")
	if err := os.WriteFile(conf, []byte(NgircdConfig("irc.test", "127.0.0.1", 6667)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(NgircdPath, "--configtest", "-f", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("ngircd --configtest: %v\n%s", err, out)
	}
	for _, bad := range []string{"Unknown variable", "Unknown section"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("ngircd says %q:\n%s", bad, out)
		}
	}
}
