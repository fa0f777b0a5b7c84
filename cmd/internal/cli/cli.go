// Package cli is meshctl: the operator command line, as a library so that
// tests (and the daemon's tests) can run it in-process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshbot/meshbot/cmd/internal/ctlapi"
	"github.com/meshbot/meshbot/cmd/internal/encyclopedia"
)

// UsageError marks a mistake in the command line (exit code 2).
type UsageError struct{ msg string }

func (e UsageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return UsageError{fmt.Sprintf(format, a...)} }

// ExitCode maps Run's error to meshctl's exit code: 0 success, 2 usage
// error, 1 anything else (including "not found").
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// env is the part of the CLI's world a test replaces: environment lookup
// and output streams.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	client *ctlapi.Client
	output string // "table" or "json"
}

// command is one entry of the command table.
type command struct {
	name    string
	usage   string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"members", "members [-status REGEX] [-role REGEX] [-watch] [-interval D]", "list the mesh's members in effective order", cmdMembers},
		{"status", "status", "this node: role, active node, IRC, store, snapshots", cmdStatus},
		{"reorder", "reorder", "clear demotions: restore the static order", cmdReorder},
		{"events", "events [-n N]", "recent membership and failover events", cmdEvents},
		{"factoid", "factoid get|set|forget|log|search ...", "read and edit factoids (allowed on any node)", cmdFactoid},
		{"import", "import encyclopedia FILE.db [-batch N]", "import an Encyclopedia plugin SQLite database", cmdImport},
		{"channels", "channels list|add|remove [NAME]", "the channels the active node sits in", cmdChannels},
		{"snapshot", "snapshot list|create|restore [ID]", "store backups", cmdSnapshot},
		{"keys", "keys list|install|use|remove [KEY]", "gossip encryption keys, mesh-wide", cmdKeys},
	}
}

// Run runs meshctl with args (without the program name). It is what main
// calls and what tests call directly.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("meshctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", getenv("MESHCTL_SOCKET"), "control socket of the node (env MESHCTL_SOCKET; default "+ctlapi.DefaultSocket+")")
	addr := fs.String("addr", getenv("MESHCTL_ADDR"), "TCP address of the node's control.listen (env MESHCTL_ADDR)")
	tokenFile := fs.String("token-file", getenv("MESHCTL_TOKEN_FILE"), "file holding the bearer token for -addr (env MESHCTL_TOKEN_FILE)")
	fs.StringVar(&e.output, "o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return nil
		}
		return usagef("%v (see 'meshctl -h')", err)
	}
	if fs.NArg() == 0 {
		printUsage(stderr, fs)
		return usagef("no command given")
	}
	e.client = &ctlapi.Client{Socket: *socket, Addr: *addr}
	if *addr != "" {
		if *tokenFile == "" {
			return usagef("-addr needs -token-file (the node's control.token_file)")
		}
		tok, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("read token file: %w", err)
		}
		e.client.Token = strings.TrimSpace(string(tok))
	}
	name := fs.Arg(0)
	if name == "help" {
		printUsage(stdout, fs)
		return nil
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, e, fs.Args()[1:])
		}
	}
	return usagef("unknown command %q (see 'meshctl help')", name)
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: meshctl [-socket PATH | -addr HOST:PORT -token-file F] [-o table|json] COMMAND ...")
	fmt.Fprintln(w, "\ncommands:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.usage, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parseFlags parses flags that may appear anywhere among the positional
// arguments ("--" ends flag parsing). Every command also accepts -o.
func (e *env) parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.output, "o", e.output, "output format: table or json")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if e.output != "table" && e.output != "json" {
		return nil, usagef("-o %q: want table or json", e.output)
	}
	return pos, nil
}

// subcommand parses the arguments of a command group such as "keys"; with
// no subcommand it means "list".
func (e *env) subcommand(name string, args []string) ([]string, error) {
	pos, err := e.parseFlags(flag.NewFlagSet(name, flag.ContinueOnError), args)
	if err != nil {
		return nil, err
	}
	if len(pos) == 0 {
		pos = []string{"list"}
	}
	return pos, nil
}

// done reports a completed change: v as JSON with -o json, else the text.
func (e *env) done(v any, format string, a ...any) error {
	if e.output == "json" {
		return e.json(v)
	}
	fmt.Fprintf(e.stdout, format+"\n", a...)
	return nil
}

func (e *env) json(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) table() *tabwriter.Writer {
	return tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
}

func wantArgs(cmd string, args []string, min, max int) error {
	if len(args) < min || (max >= 0 && len(args) > max) {
		for _, c := range commands {
			if c.name == cmd || strings.HasPrefix(cmd, c.name+" ") {
				return usagef("usage: meshctl %s", c.usage)
			}
		}
		return usagef("wrong number of arguments for %s", cmd)
	}
	return nil
}

func cmdMembers(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("members", flag.ContinueOnError)
	status := fs.String("status", "", "only members whose status matches REGEX (alive, suspect, dead, left)")
	role := fs.String("role", "", "only members whose role matches REGEX (active, standby, unhealthy)")
	watch := fs.Bool("watch", false, "print again every -interval until interrupted")
	interval := fs.Duration("interval", time.Second, "refresh interval for -watch")
	pos, err := e.parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("members", pos, 0, 0); err != nil {
		return err
	}
	statusRE, err := compileFilter("-status", *status)
	if err != nil {
		return err
	}
	roleRE, err := compileFilter("-role", *role)
	if err != nil {
		return err
	}
	if *interval <= 0 {
		return usagef("-interval must be positive")
	}
	for {
		ms, err := e.client.Members(ctx)
		if err != nil {
			if *watch && ctx.Err() != nil {
				return nil // interrupted while watching: a normal end
			}
			return err
		}
		ms = filterMembers(ms, statusRE, roleRE)
		if *watch && e.output == "table" {
			fmt.Fprintf(e.stdout, "\x1b[H\x1b[2J%s\n", time.Now().Format(time.TimeOnly))
		}
		if e.output == "json" {
			if *watch {
				err = json.NewEncoder(e.stdout).Encode(ms) // one array per line
			} else {
				err = e.json(ms)
			}
		} else {
			err = printMembers(e.table(), ms)
		}
		if err != nil || !*watch {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

func compileFilter(flagName, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, usagef("%s %q is not a valid regular expression: %v", flagName, expr, err)
	}
	return re, nil
}

func filterMembers(ms []ctlapi.Member, status, role *regexp.Regexp) []ctlapi.Member {
	out := make([]ctlapi.Member, 0, len(ms))
	for _, m := range ms {
		if status != nil && !status.MatchString(m.Status) {
			continue
		}
		if role != nil && !role.MatchString(m.Role) {
			continue
		}
		out = append(out, m)
	}
	return out
}

func printMembers(tw *tabwriter.Writer, ms []ctlapi.Member) error {
	fmt.Fprintln(tw, "NAME\tADDR\tRANK\tSTATUS\tROLE\tHEALTH\tIRC\tNICK\tLAG\tENTRIES\tDIGEST\tVERSION")
	for _, m := range ms {
		name := m.Name
		if m.Self {
			name += "*"
		}
		irc := "-"
		if m.IRCConnected {
			irc = m.IRCServer
			if irc == "" {
				irc = "yes"
			}
		}
		lag := "-"
		if m.IRCConnected {
			lag = fmt.Sprintf("%dms", m.LagMS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			name, m.Addr, m.Rank, m.Status, m.Role, m.Health, irc, dash(m.Nick), lag, m.Entries, dash(m.Digest), dash(m.Version))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	pos, err := e.parseFlags(flag.NewFlagSet("status", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if err := wantArgs("status", pos, 0, 0); err != nil {
		return err
	}
	s, err := e.client.Status(ctx)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return e.json(s)
	}
	tw := e.table()
	fmt.Fprintf(tw, "node:\t%s (rank %d, %s)\n", s.Name, s.Rank, s.Version)
	fmt.Fprintf(tw, "role:\t%s\n", s.Role)
	fmt.Fprintf(tw, "active node:\t%s\n", dash(s.Active))
	fmt.Fprintf(tw, "health:\t%s\n", s.Health)
	fmt.Fprintf(tw, "mesh:\t%d alive, profile %s, failback %s\n", s.Members, s.Profile, s.Failback)
	if len(s.Demotions) > 0 {
		var ds []string
		for _, d := range s.Demotions {
			ds = append(ds, fmt.Sprintf("%s (failed %s)", d.Node, fmtTime(d.At)))
		}
		fmt.Fprintf(tw, "demoted:\t%s ('meshctl reorder' restores the static order)\n", strings.Join(ds, ", "))
	}
	switch {
	case !s.IRC.Enabled:
		fmt.Fprintf(tw, "irc:\tdisabled (mesh-only mode)\n")
	case s.IRC.Connected:
		fmt.Fprintf(tw, "irc:\tconnected to %s as %s, lag %dms\n", s.IRC.Server, s.IRC.Nick, s.IRC.LagMS)
	default:
		fmt.Fprintf(tw, "irc:\tdisconnected\n")
	}
	st := "ok"
	if !s.Store.Healthy {
		st = "ERROR: " + s.Store.Reason
	}
	fmt.Fprintf(tw, "store:\t%s, %d entries, digest %s, %d sync rounds\n", st, s.Store.Entries, dash(s.Store.Digest), s.Store.SyncRounds)
	fmt.Fprintf(tw, "snapshots:\t%d, newest %s\n", s.Store.Snapshots, fmtTime(s.Store.LastSnapshot))
	fmt.Fprintf(tw, "started:\t%s\n", fmtTime(s.StartedAt))
	return tw.Flush()
}

func cmdReorder(ctx context.Context, e *env, args []string) error {
	pos, err := e.parseFlags(flag.NewFlagSet("reorder", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if err := wantArgs("reorder", pos, 0, 0); err != nil {
		return err
	}
	if err := e.client.Reorder(ctx); err != nil {
		return err
	}
	return e.done(map[string]bool{"ok": true}, "demotions cleared: the static rank order is in effect")
}

func cmdEvents(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	n := fs.Int("n", 50, "how many events")
	pos, err := e.parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("events", pos, 0, 0); err != nil {
		return err
	}
	if *n <= 0 {
		return usagef("-n must be positive")
	}
	evs, err := e.client.Events(ctx, *n)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return e.json(evs)
	}
	tw := e.table()
	fmt.Fprintln(tw, "TIME\tTYPE\tNODE\tDETAIL")
	for _, ev := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ev.Time.Local().Format("2006-01-02 15:04:05.000"), ev.Type, dash(ev.Node), ev.Detail)
	}
	return tw.Flush()
}

func cmdFactoid(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("factoid", flag.ContinueOnError)
	author := fs.String("author", "", "author recorded for edits (default: $USER@meshctl)")
	limit := fs.Int("limit", 50, "search: maximum results")
	pos, err := e.parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("usage: meshctl factoid get|set|forget|log|search ...")
	}
	who := *author
	if who == "" {
		who = e.getenv("USER")
		if who == "" {
			who = "operator"
		}
		who += "@meshctl"
	}
	sub, rest := pos[0], pos[1:]
	switch sub {
	case "get":
		if len(rest) != 1 {
			return usagef("usage: meshctl factoid get NAME")
		}
		f, err := e.client.GetFactoid(ctx, rest[0])
		if err != nil {
			return err
		}
		if f.Forgotten {
			if e.output == "json" {
				_ = e.json(f)
			}
			return fmt.Errorf("%w: factoid %q is forgotten ('meshctl factoid log %s' shows its history)", ctlapi.ErrNotFound, f.Name, f.Name)
		}
		if e.output == "json" {
			return e.json(f)
		}
		fmt.Fprintln(e.stdout, f.Value)
		return nil
	case "set":
		if len(rest) < 2 {
			return usagef("usage: meshctl factoid set NAME VALUE")
		}
		f, err := e.client.SetFactoid(ctx, rest[0], strings.Join(rest[1:], " "), who)
		if err != nil {
			return err
		}
		return e.done(f, "%s = %s", f.Name, f.Value)
	case "forget":
		if len(rest) != 1 {
			return usagef("usage: meshctl factoid forget NAME")
		}
		if err := e.client.ForgetFactoid(ctx, rest[0], who); err != nil {
			return err
		}
		return e.done(map[string]string{"forgotten": rest[0]}, "forgot %s", rest[0])
	case "log":
		if len(rest) != 1 {
			return usagef("usage: meshctl factoid log NAME")
		}
		log, err := e.client.FactoidLog(ctx, rest[0])
		if err != nil {
			return err
		}
		if e.output == "json" {
			return e.json(log)
		}
		tw := e.table()
		fmt.Fprintln(tw, "TIME\tAUTHOR\tOLD VALUE\tNEW VALUE")
		for _, l := range log {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fmtTime(l.At), l.Author, dash(l.OldValue), dash(l.NewValue))
		}
		return tw.Flush()
	case "search":
		if len(rest) == 0 {
			return usagef("usage: meshctl factoid search WORDS")
		}
		fs, err := e.client.SearchFactoids(ctx, strings.Join(rest, " "), *limit)
		if err != nil {
			return err
		}
		if e.output == "json" {
			return e.json(fs)
		}
		tw := e.table()
		fmt.Fprintln(tw, "NAME\tVALUE")
		for _, f := range fs {
			fmt.Fprintf(tw, "%s\t%s\n", f.Name, f.Value)
		}
		return tw.Flush()
	}
	return usagef("unknown factoid command %q (want get, set, forget, log or search)", sub)
}

func cmdChannels(ctx context.Context, e *env, args []string) error {
	pos, err := e.subcommand("channels", args)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "list":
		if err := wantArgs("channels", pos[1:], 0, 0); err != nil {
			return err
		}
		chs, err := e.client.Channels(ctx)
		if err != nil {
			return err
		}
		if e.output == "json" {
			if chs == nil {
				chs = []string{}
			}
			return e.json(chs)
		}
		for _, c := range chs {
			fmt.Fprintln(e.stdout, c)
		}
		return nil
	case "add", "remove":
		if len(pos) != 2 {
			return usagef("usage: meshctl channels %s '#CHANNEL'", pos[0])
		}
		if pos[0] == "add" {
			err = e.client.AddChannel(ctx, pos[1])
		} else {
			err = e.client.RemoveChannel(ctx, pos[1])
		}
		if err != nil {
			return err
		}
		verb := map[string]string{"add": "added", "remove": "removed"}[pos[0]]
		return e.done(map[string]string{pos[0]: pos[1]}, "%s %s", verb, pos[1])
	}
	return usagef("unknown channels command %q (want list, add or remove)", pos[0])
}

func cmdSnapshot(ctx context.Context, e *env, args []string) error {
	pos, err := e.subcommand("snapshot", args)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "list":
		snaps, err := e.client.Snapshots(ctx)
		if err != nil {
			return err
		}
		if e.output == "json" {
			if snaps == nil {
				snaps = []ctlapi.Snapshot{}
			}
			return e.json(snaps)
		}
		tw := e.table()
		fmt.Fprintln(tw, "ID\tTIME\tENTRIES\tSIZE\tVERIFIED")
		for _, s := range snaps {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%v\n", s.ID, fmtTime(s.Time), s.Entries, s.Size, s.Verified)
		}
		return tw.Flush()
	case "create":
		s, err := e.client.CreateSnapshot(ctx)
		if err != nil {
			return err
		}
		return e.done(s, "snapshot %s written and verified: %d entries, %d bytes", s.ID, s.Entries, s.Size)
	case "restore":
		if len(pos) != 2 {
			return usagef("usage: meshctl snapshot restore ID (see 'meshctl snapshot list')")
		}
		if err := e.client.RestoreSnapshot(ctx, pos[1]); err != nil {
			return err
		}
		return e.done(map[string]string{"restored": pos[1]}, "restored %s; the node now pulls newer records from its peers", pos[1])
	}
	return usagef("unknown snapshot command %q (want list, create or restore)", pos[0])
}

func cmdKeys(ctx context.Context, e *env, args []string) error {
	pos, err := e.subcommand("keys", args)
	if err != nil {
		return err
	}
	switch op := pos[0]; op {
	case "list":
		k, err := e.client.Keys(ctx)
		if err != nil {
			return err
		}
		if e.output == "json" {
			return e.json(k)
		}
		keys := make([]string, 0, len(k.Keys))
		for key := range k.Keys {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		tw := e.table()
		fmt.Fprintln(tw, "KEY\tMEMBERS\tPRIMARY")
		for _, key := range keys {
			prim := ""
			if key == k.Primary {
				prim = "yes"
			}
			fmt.Fprintf(tw, "%s\t%d/%d\t%s\n", key, k.Keys[key], k.Members, prim)
		}
		return tw.Flush()
	case "install", "use", "remove":
		if len(pos) != 2 {
			return usagef("usage: meshctl keys %s KEY (base64, from 'meshbot keygen')", op)
		}
		key, err := ctlapi.DecodeKey(pos[1])
		if err != nil {
			return usagef("%v", err)
		}
		if err := e.client.KeyOp(ctx, op, key); err != nil {
			return err
		}
		msg := map[string]string{
			"install": "installed on every member; next: 'meshctl keys use KEY'",
			"use":     "is now the primary key on every member; next: remove the old key",
			"remove":  "removed from every member",
		}[op]
		return e.done(map[string]string{op: pos[1]}, "key %s", msg)
	}
	return usagef("unknown keys command %q (want list, install, use or remove)", pos[0])
}

func cmdImport(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	batch := fs.Int("batch", 500, "factoids per request")
	pos, err := e.parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || pos[0] != "encyclopedia" {
		return usagef("usage: meshctl import encyclopedia FILE.db")
	}
	if *batch <= 0 {
		return usagef("-batch must be positive")
	}
	db, err := encyclopedia.Open(pos[1])
	if err != nil {
		return err
	}
	defer db.Close()
	total, err := db.Count()
	if err != nil {
		return err
	}
	var sum ctlapi.ImportResult
	var pending []ctlapi.ImportFact
	done := 0
	lastProgress := time.Now()
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		res, err := e.client.Import(ctx, ctlapi.ImportRequest{Facts: pending})
		if err != nil {
			return fmt.Errorf("import batch ending at %q: %w", pending[len(pending)-1].Name, err)
		}
		sum.Created += res.Created
		sum.Unchanged += res.Unchanged
		sum.Failed = append(sum.Failed, res.Failed...)
		done += len(pending)
		pending = pending[:0]
		if e.output == "table" && (time.Since(lastProgress) > time.Second || done == total) && total > *batch {
			fmt.Fprintf(e.stderr, "imported %d/%d (%d%%)\n", done, total, done*100/max(total, 1))
			lastProgress = time.Now()
		}
		return nil
	}
	err = db.Each(func(f encyclopedia.Fact) error {
		fact := ctlapi.ImportFact{Factoid: ctlapi.Factoid{
			Name: f.Name, Value: f.Value, Author: f.Author, Added: f.Added,
			Forgotten: f.Forgotten, Popularity: f.Popularity,
		}}
		// The plugin logs only old values; an edit's new value is the next
		// edit's old value, or the current value for the last edit.
		for i, l := range f.Log {
			next := f.Value
			if i+1 < len(f.Log) {
				next = f.Log[i+1].OldValue
			}
			fact.Log = append(fact.Log, ctlapi.LogEntry{Name: f.Name, Author: l.Author, At: l.At, OldValue: l.OldValue, NewValue: next})
		}
		pending = append(pending, fact)
		if len(pending) >= *batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	for _, s := range db.Skipped() {
		sum.Failed = append(sum.Failed, "skipped row: "+s)
	}
	if e.output == "json" {
		return e.json(sum)
	}
	fmt.Fprintf(e.stdout, "imported %s: %d created, %d already present, %d failed\n", pos[1], sum.Created, sum.Unchanged, len(sum.Failed))
	for _, f := range sum.Failed {
		fmt.Fprintf(e.stdout, "  %s\n", f)
	}
	return nil
}
