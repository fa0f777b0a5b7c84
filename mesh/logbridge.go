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
	b.l.Log(ctx, level, string(line), "source", "memberlist")
	return n, nil
}
