package mesh

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// logBridge turns memberlist's log.Logger lines ("[ERR] memberlist: ...")
// into slog records at the matching level. DEBUG lines are emitted only if
// the logger has debug enabled.
type logBridge struct {
	l *slog.Logger
}

func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(&logBridge{l: l}, "", 0)
}

var bridgeLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
	{"[WARN]", slog.LevelWarn},
	{"[INFO]", slog.LevelInfo},
	{"[DEBUG]", slog.LevelDebug},
	{"[TRACE]", slog.LevelDebug},
}

// Write implements io.Writer. It never fails.
func (b *logBridge) Write(p []byte) (int, error) {
	n := len(p)
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, bl := range bridgeLevels {
		if bytes.HasPrefix(line, []byte(bl.prefix)) {
			level = bl.level
			line = bytes.TrimSpace(line[len(bl.prefix):])
			break
		}
	}
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return n, nil
	}
	args := []any{"source", "memberlist"}
	for _, h := range bridgeHints {
		if bytes.Contains(line, []byte(h.match)) {
			args = append(args, "hint", h.hint)
			break
		}
	}
	b.l.Log(ctx, level, string(line), args...)
	return n, nil
}

// bridgeHints tell the operator what a memberlist message usually means.
var bridgeHints = []struct{ match, hint string }{
	{"no installed keys could decrypt", "the peer uses another gossip key: compare mesh.key_file (and data_dir/keyring.json) on both nodes"},
	{"Encryption is configured but remote state is not encrypted", "the peer runs without a gossip key: set the same mesh.key_file on every node"},
	{"Remote state is encrypted and encryption is not configured", "the peer uses a gossip key and this node does not: set mesh.key_file"},
	{"Conflicting address", "two nodes use the same name: every node needs its own name"},
}
