// Command meshbot is the meshbot node daemon: one copy of the IRC factoid
// bot that joins a mesh of copies, takes the active role when it is the
// first live node in the ranking, and keeps its factoid store equal with
// the others.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// Version returns the build version: the -X value, else the module version
// or VCS revision recorded by the Go toolchain, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "meshbot: %v: shutting down gracefully (send it again to force exit)\n", s)
		cancel()
		s = <-sigs
		fmt.Fprintf(os.Stderr, "meshbot: %v again: forced exit\n", s)
		os.Exit(130)
	}()
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshbot:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage:
  meshbot run -config FILE [-name N] [-rank R] [-bind HOST:PORT] [-join A,B] [-data DIR] [-socket PATH]
  meshbot keygen     print a new base64 gossip key
  meshbot version    print the build version`

// Run runs the meshbot command line (without the program name) until ctx
// is cancelled. Tests call it directly.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given\n" + usage}
	}
	switch args[0] {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, Version())
		return nil
	case "keygen":
		if len(args) > 1 {
			return usageError{"keygen takes no arguments"}
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key))
		return nil
	case "run":
		return runCmd(ctx, args[1:], stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q\n%s", args[0], usage)}
}

func runCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshbot run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f Flags
	fs.StringVar(&f.Config, "config", "", "YAML config file (required)")
	fs.StringVar(&f.Name, "name", "", "node name (overrides name)")
	fs.IntVar(&f.Rank, "rank", 0, "static rank, 1 = most preferred (overrides rank)")
	fs.StringVar(&f.Bind, "bind", "", "gossip HOST:PORT (overrides mesh.bind)")
	fs.StringVar(&f.Join, "join", "", "comma-separated seed peers (overrides mesh.join)")
	fs.StringVar(&f.Data, "data", "", "data directory (overrides data_dir)")
	fs.StringVar(&f.Socket, "socket", "", "control socket path (overrides control.socket)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if f.Config == "" {
		return usageError{"run needs -config FILE"}
	}
	cfg, err := LoadConfig(f.Config)
	if err != nil {
		return err
	}
	f.Apply(&cfg)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config %s: %w", f.Config, err)
	}
	logger, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	d, err := NewDaemon(cfg, logger)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
