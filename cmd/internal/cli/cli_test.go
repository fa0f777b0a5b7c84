package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/cmd/internal/ctlapi"
	"github.com/meshbot/meshbot/cmd/internal/encyclopedia"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBackend is an in-memory ctlapi.Backend.
type fakeBackend struct {
	mu       sync.Mutex
	factoids map[string]ctlapi.Factoid
	channels []string
	keys     map[string]int
	reorders int
	imported int
}

func newFake() *fakeBackend {
	return &fakeBackend{factoids: map[string]ctlapi.Factoid{
		"ubuntu": {Name: "ubuntu", Value: "Ubuntu is a Linux distribution", Author: "me"},
		"old":    {Name: "old", Value: "gone", Forgotten: true},
	}, keys: map[string]int{"MDEyMzQ1Njc4OWFiY2RlZg==": 3}}
}

func (f *fakeBackend) Members(context.Context) ([]ctlapi.Member, error) {
	return []ctlapi.Member{
		{Name: "n1", Addr: "127.0.0.1:1", Rank: 1, Position: 1, Status: "alive", Role: "active", Health: "ok", Self: true, Digest: "abc", Entries: 2},
		{Name: "n2", Addr: "127.0.0.1:2", Rank: 2, Position: 2, Status: "alive", Role: "standby", Health: "ok", IRCConnected: true, Nick: "bot2", LagMS: 5},
		{Name: "n3", Addr: "127.0.0.1:3", Rank: 3, Position: 3, Status: "dead", Role: "unhealthy", Health: "ok"},
	}, nil
}
func (f *fakeBackend) Status(context.Context) (ctlapi.Status, error) {
	return ctlapi.Status{Name: "n1", Rank: 1, Role: "active", Active: "n1", Health: "ok", Store: ctlapi.StoreStatus{Healthy: true}}, nil
}
func (f *fakeBackend) Reorder(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reorders++
	return nil
}
func (f *fakeBackend) Events(_ context.Context, n int) ([]ctlapi.Event, error) {
	return []ctlapi.Event{{Time: time.Unix(0, 0), Type: "role", Node: "n1", Detail: "active n3 -> n1"}}, nil
}
func (f *fakeBackend) GetFactoid(_ context.Context, name string) (ctlapi.Factoid, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.factoids[name]
	if !ok {
		return v, fmt.Errorf("%w: factoid %q", ctlapi.ErrNotFound, name)
	}
	return v, nil
}
func (f *fakeBackend) SetFactoid(_ context.Context, name, value, author string) (ctlapi.Factoid, error) {
	if name == "" || strings.ContainsRune(value, 0) {
		return ctlapi.Factoid{}, fmt.Errorf("%w: bad factoid", ctlapi.ErrInvalid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := ctlapi.Factoid{Name: name, Value: value, Author: author}
	f.factoids[name] = v
	return v, nil
}
func (f *fakeBackend) ForgetFactoid(_ context.Context, name, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.factoids[name]
	if !ok {
		return fmt.Errorf("%w: factoid %q", ctlapi.ErrNotFound, name)
	}
	v.Forgotten = true
	f.factoids[name] = v
	return nil
}
func (f *fakeBackend) FactoidLog(context.Context, string) ([]ctlapi.LogEntry, error) {
	return []ctlapi.LogEntry{{Author: "me", OldValue: "", NewValue: "x"}}, nil
}
func (f *fakeBackend) SearchFactoids(_ context.Context, words string, _ int) ([]ctlapi.Factoid, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ctlapi.Factoid
	for _, v := range f.factoids {
		if strings.Contains(v.Value, words) {
			out = append(out, v)
		}
	}
	return out, nil
}
func (f *fakeBackend) Import(_ context.Context, req ctlapi.ImportRequest) (ctlapi.ImportResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res ctlapi.ImportResult
	for _, x := range req.Facts {
		if old, ok := f.factoids[x.Name]; ok && old.Value == x.Value {
			res.Unchanged++
			continue
		}
		f.factoids[x.Name] = x.Factoid
		f.imported++
		res.Created++
	}
	return res, nil
}
func (f *fakeBackend) Channels(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.channels...), nil
}
func (f *fakeBackend) AddChannel(_ context.Context, name string) error {
	if !strings.HasPrefix(name, "#") {
		return fmt.Errorf("%w: channel %q must start with #", ctlapi.ErrInvalid, name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channels = append(f.channels, name)
	return nil
}
func (f *fakeBackend) RemoveChannel(_ context.Context, name string) error { return nil }
func (f *fakeBackend) Snapshots(context.Context) ([]ctlapi.Snapshot, error) {
	return []ctlapi.Snapshot{{ID: "s1", Entries: 3, Verified: true}}, nil
}
func (f *fakeBackend) CreateSnapshot(context.Context) (ctlapi.Snapshot, error) {
	return ctlapi.Snapshot{ID: "s2", Entries: 3, Verified: true}, nil
}
func (f *fakeBackend) RestoreSnapshot(_ context.Context, id string) error {
	if id != "s1" {
		return fmt.Errorf("%w: snapshot %q", ctlapi.ErrNotFound, id)
	}
	return nil
}
func (f *fakeBackend) Keys(context.Context) (ctlapi.Keys, error) {
	return ctlapi.Keys{Primary: "MDEyMzQ1Njc4OWFiY2RlZg==", Keys: f.keys, Members: 3}, nil
}
func (f *fakeBackend) InstallKey(context.Context, []byte) error { return nil }
func (f *fakeBackend) UseKey(context.Context, []byte) error     { return nil }
func (f *fakeBackend) RemoveKey(context.Context, []byte) error {
	return fmt.Errorf("%w: cannot remove the primary key", ctlapi.ErrInvalid)
}

// serve starts the API for b on a Unix socket and returns the socket path.
func serve(t *testing.T, b ctlapi.Backend, token string) (string, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cli") // short path: Unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ctlapi.NewHandler(b, "")}
	go srv.Serve(ln)
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tsrv := &http.Server{Handler: ctlapi.NewHandler(b, token)}
	go tsrv.Serve(tln)
	t.Cleanup(func() {
		srv.Close()
		tsrv.Close()
		os.RemoveAll(dir)
	})
	return sock, tln.Addr().String()
}

func run(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	if err != nil {
		fmt.Fprintln(&errb, err)
	}
	return out.String(), errb.String(), ExitCode(err)
}

func TestCommands(t *testing.T) {
	fb := newFake()
	sock, _ := serve(t, fb, "")
	env := map[string]string{"MESHCTL_SOCKET": sock, "USER": "alice"}
	tests := []struct {
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  string   // substring of stderr
	}{
		{args: []string{"members"}, wantOut: []string{"NAME", "n1*", "active", "n2", "standby", "bot2", "5ms"}},
		{args: []string{"members", "-role", "^standby$"}, wantOut: []string{"n2"}},
		{args: []string{"members", "-status", "dead", "-o", "json"}, wantOut: []string{`"name": "n3"`}},
		{args: []string{"members", "-status", "("}, wantCode: 2, wantErr: "not a valid regular expression"},
		{args: []string{"members", "extra"}, wantCode: 2, wantErr: "usage: meshctl members"},
		{args: []string{"status"}, wantOut: []string{"role:", "active", "store:"}},
		{args: []string{"reorder"}, wantOut: []string{"static rank order"}},
		{args: []string{"events"}, wantOut: []string{"active n3 -> n1"}},
		{args: []string{"factoid", "get", "ubuntu"}, wantOut: []string{"Ubuntu is a Linux distribution"}},
		{args: []string{"factoid", "get", "nope"}, wantCode: 1, wantErr: "not found"},
		{args: []string{"factoid", "get", "old"}, wantCode: 1, wantErr: "forgotten"},
		{args: []string{"factoid", "set", "k", "some", "value"}, wantOut: []string{"k = some value"}},
		{args: []string{"factoid", "set", "k"}, wantCode: 2, wantErr: "usage"},
		{args: []string{"factoid", "set", "", "v"}, wantCode: 1, wantErr: "invalid"},
		{args: []string{"factoid", "set", "k", "bad\xffvalue"}, wantCode: 1, wantErr: "not valid UTF-8"},
		{args: []string{"factoid", "get", "bad\xfe"}, wantCode: 1, wantErr: "not valid UTF-8"},
		{args: []string{"factoid", "forget", "ubuntu"}, wantOut: []string{"forgot ubuntu"}},
		{args: []string{"factoid", "log", "k"}, wantOut: []string{"AUTHOR", "me"}},
		{args: []string{"factoid", "search", "value"}, wantOut: []string{"k"}},
		{args: []string{"factoid", "frob"}, wantCode: 2, wantErr: "unknown factoid command"},
		{args: []string{"channels", "add", "#ubuntu"}, wantOut: []string{"added #ubuntu"}},
		{args: []string{"channels", "add", "ubuntu"}, wantCode: 1, wantErr: "must start with #"},
		{args: []string{"channels", "list"}, wantOut: []string{"#ubuntu"}},
		{args: []string{"snapshot", "list"}, wantOut: []string{"s1"}},
		{args: []string{"snapshot", "create"}, wantOut: []string{"s2"}},
		{args: []string{"snapshot", "restore", "s9"}, wantCode: 1, wantErr: "not found"},
		{args: []string{"keys", "list"}, wantOut: []string{"MDEyMzQ1Njc4OWFiY2RlZg==", "3/3", "yes"}},
		{args: []string{"keys", "install", "short"}, wantCode: 2, wantErr: "base64"},
		{args: []string{"keys", "remove", "MDEyMzQ1Njc4OWFiY2RlZg=="}, wantCode: 1, wantErr: "primary"},
		{args: []string{"frobnicate"}, wantCode: 2, wantErr: "unknown command"},
		{args: []string{}, wantCode: 2, wantErr: "no command"},
		{args: []string{"-o", "yaml", "members"}, wantCode: 2, wantErr: "want table or json"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errs, code := run(t, env, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errs)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tt.wantErr != "" && !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errs)
			}
		})
	}
}

func TestMembersJSONContract(t *testing.T) {
	sock, _ := serve(t, newFake(), "")
	out, errs, code := run(t, nil, "-socket", sock, "members", "-o", "json")
	if code != 0 {
		t.Fatal(errs)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(rows) != 3 {
		t.Fatalf("got %d rows", len(rows))
	}
	for _, field := range []string{"name", "addr", "rank", "status", "role", "health", "irc_connected", "nick", "lag_ms", "version", "entries", "digest"} {
		if _, ok := rows[0][field]; !ok {
			t.Errorf("members -o json lacks field %q (DESIGN.md contract)", field)
		}
	}
}

func TestTokenAuth(t *testing.T) {
	_, addr := serve(t, newFake(), "s3cret")
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	os.WriteFile(bad, []byte("guess\n"), 0o600)
	if _, errs, code := run(t, nil, "-addr", addr, "-token-file", good, "status"); code != 0 {
		t.Fatalf("good token refused: %s", errs)
	}
	_, errs, code := run(t, nil, "-addr", addr, "-token-file", bad, "status")
	if code != 1 || !strings.Contains(errs, "bearer token") {
		t.Fatalf("bad token: exit %d, %s", code, errs)
	}
	if _, errs, code := run(t, nil, "-addr", addr, "status"); code != 2 || !strings.Contains(errs, "token-file") {
		t.Fatalf("missing token file: exit %d, %s", code, errs)
	}
}

func TestUnreachableNode(t *testing.T) {
	_, errs, code := run(t, nil, "-socket", filepath.Join(t.TempDir(), "none.sock"), "members")
	if code != 1 || !strings.Contains(errs, "is the daemon running") {
		t.Fatalf("exit %d, %s", code, errs)
	}
}

func TestImportEncyclopedia(t *testing.T) {
	fb := newFake()
	sock, _ := serve(t, fb, "")
	db := filepath.Join(t.TempDir(), "ency.db")
	facts := []encyclopedia.Fact{
		{Name: "lts", Value: "Long Term Support", Author: "bob", Added: time.Unix(1e9, 0).UTC()},
		{Name: "ubuntu-#kubuntu", Value: "<alias> kubuntu", Author: "bob", Added: time.Unix(1e9, 0).UTC()},
	}
	if err := encyclopedia.WriteFixture(db, facts); err != nil {
		t.Fatal(err)
	}
	out, errs, code := run(t, nil, "-socket", sock, "import", "encyclopedia", db)
	if code != 0 || !strings.Contains(out, "2 created") {
		t.Fatalf("first import: exit %d\n%s%s", code, out, errs)
	}
	out, _, code = run(t, nil, "-socket", sock, "import", "encyclopedia", db)
	if code != 0 || !strings.Contains(out, "0 created, 2 already present") {
		t.Fatalf("re-import should change nothing: %s", out)
	}
	notdb := filepath.Join(t.TempDir(), "x.db")
	os.WriteFile(notdb, []byte("hello"), 0o600)
	if _, errs, code := run(t, nil, "-socket", sock, "import", "encyclopedia", notdb); code != 1 || !strings.Contains(strings.ToLower(errs), "encyclopedia") {
		t.Fatalf("non-database: exit %d %s", code, errs)
	}
	if fb.imported != 2 {
		t.Fatalf("backend imported %d", fb.imported)
	}
}

func TestMembersWatch(t *testing.T) {
	sock, _ := serve(t, newFake(), "")
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Run(ctx, []string{"-socket", sock, "members", "-watch", "-interval", "50ms", "-o", "json"}, func(string) string { return "" }, &out, &errb)
	if err != nil {
		t.Fatalf("watch ended with %v: %s", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("watch printed %d snapshots, want several:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		var rows []ctlapi.Member
		if err := json.Unmarshal([]byte(l), &rows); err != nil || len(rows) != 3 {
			t.Fatalf("watch line is not a members array: %q (%v)", l, err)
		}
	}
}
