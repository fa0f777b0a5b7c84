// Package irctest holds what the tests and benchmark programs that run real
// meshbot processes against a real IRC server share: finding the module
// root, the ngircd configuration that works on these machines, and a small
// IRC line parser for observer clients.
package irctest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NgircdPath is where Debian's ngircd package installs the server.
const NgircdPath = "/usr/sbin/ngircd"

// ModuleRoot walks up from the working directory to the directory holding
// go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// NgircdConfig returns an ngircd configuration for tests listening on
// listen:port. It carries the settings measured on these machines
// (FIELD-NOTES.md): MaxConnectionsIP = 0 (the default 5 refuses the sixth
// loopback client) and MaxPenaltyTime = 0 in [Limits] (with penalties ngircd
// was seen spinning and writing "Broken pipe" lines after a client quit);
// no PAM, ident or DNS; no PidFile, since ngircd drops to user nobody.
// PingTimeout and PongTimeout are ngircd's defaults, so a frozen client's
// nick stays about 141 s.
func NgircdConfig(name, listen string, port int) string {
	return fmt.Sprintf(`[Global]
Name = %s
Info = meshbot test server
MotdPhrase = meshbot test
AdminInfo1 = meshbot test
AdminInfo2 = test network only
AdminEMail = test@localhost
Listen = %s
Ports = %d
[Limits]
MaxConnectionsIP = 0
MaxPenaltyTime = 0
MaxJoins = 0
PingTimeout = 120
PongTimeout = 20
[Options]
PAM = no
Ident = no
DNS = no
`, name, listen, port)
}

// ParseLine splits an IRC line (without CR LF) into the source nick (""
// without a prefix), the upper-cased command and the parameters, the
// trailing one without its colon. It never fails: garbage gives an empty
// command.
func ParseLine(line string) (nick, cmd string, params []string) {
	if strings.HasPrefix(line, ":") {
		prefix, rest, ok := strings.Cut(line[1:], " ")
		if !ok {
			return "", "", nil
		}
		nick, _, _ = strings.Cut(prefix, "!")
		line = rest
	}
	for line != "" {
		if strings.HasPrefix(line, ":") {
			params = append(params, line[1:])
			break
		}
		var p string
		p, line, _ = strings.Cut(line, " ")
		switch {
		case p == "":
		case cmd == "":
			cmd = strings.ToUpper(p)
		default:
			params = append(params, p)
		}
	}
	return nick, cmd, params
}
