package bot

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func newTestFactoids(st *memStore, primary bool) *factoids {
	cfg := Config{
		Store: st, Now: time.Now, RelayChannel: "#ops", BotChannel: "#bots",
		IsPrimary:   func() bool { return primary },
		PrimaryNick: func() string { return "ubotu" },
	}
	return newFactoids(&cfg, nil)
}

func TestFactoidCommands(t *testing.T) {
	editor := msgCtx{Nick: "ed", Hostmask: "ed!e@ubuntu/member/ed", Channel: "#ubuntu", BotNick: "ubotu"}
	user := msgCtx{Nick: "joe", Hostmask: "joe!j@host", Channel: "#ubuntu", BotNick: "ubotu"}
	private := msgCtx{Nick: "joe", Hostmask: "joe!j@host", BotNick: "ubotu"}
	seed := func(st *memStore) {
		st.editors = []string{"*!*@ubuntu/member/*"}
		st.put("foo", "bar")
		st.put("foo-also", "more about foo")
		st.put("greet", "<reply> hello $who in $chan")
		st.put("ali", "<alias> foo")
		st.put("loop1", "<alias> loop2")
		st.put("loop2", "<alias> loop1")
		st.put("dangling", "<alias> nothing")
		st.put("chanfoo", "global")
		st.put("chanfoo-#ubuntu", "channel specific")
		st.put("gone", "old")
		st.facts["gone"] = Factoid{Name: "gone", Value: "old", Forgotten: true}
	}
	tests := []struct {
		name    string
		text    string
		m       msgCtx
		primary bool
		want    []outMsg
		check   func(t *testing.T, st *memStore)
	}{
		{name: "lookup", text: "!foo", m: user, want: []outMsg{{"#ubuntu", "foo is bar"}, {"#ubuntu", "more about foo"}}},
		{name: "reply and vars", text: "!greet", m: user, want: []outMsg{{"#ubuntu", "hello joe in #ubuntu"}}},
		{name: "alias", text: "!ali", m: user, want: []outMsg{{"#ubuntu", "foo is bar"}}},
		{name: "alias loop", text: "!loop1", m: user, want: []outMsg{{"#ubuntu", "Error: infinite <alias> loop detected"}}},
		{name: "alias dangling", text: "!dangling", m: user, want: []outMsg{{"#ubuntu", "Error: unresolvable <alias> to nothing"}}},
		{name: "channel variant", text: "!chanfoo", m: user, want: []outMsg{{"#ubuntu", "chanfoo is channel specific"}}},
		{name: "channel variant private", text: "chanfoo", m: private, want: []outMsg{{"joe", "chanfoo is global"}}},
		{name: "not found", text: "!nothere", m: user, want: []outMsg{{"#ubuntu", "Factoid nothere not found"}}},
		{name: "forgotten not found", text: "!gone", m: user, want: []outMsg{{"#ubuntu", "Factoid gone not found"}}},
		{name: "not intelligent", text: "!where can i get some help", m: user, want: []outMsg{{"#ubuntu", "joe: Error: I am only a bot, please don't think I'm intelligent :)"}}},
		{name: "tell", text: "!foo > bob", m: user, want: []outMsg{{"bob", "joe wants you to know: foo is bar"}, {"bob", "more about foo"}}},
		{name: "pipe", text: "!greet | bob", m: user, want: []outMsg{{"#ubuntu", "bob: hello joe in #ubuntu"}}},
		{name: "raw", text: "!+greet", m: user, want: []outMsg{{"#ubuntu", "<reply> hello $who in $chan"}}},
		{name: "info", text: "!-foo", m: user, want: []outMsg{
			{"#ubuntu", "foo aliases: ali - added by tester on 2007-01-02 03:04:05 - popularity 0"},
			{"#ubuntu", "foo-also has no aliases - added by tester on 2007-01-02 03:04:05 - popularity 0"},
		}},
		{name: "search", text: "!search foo", m: user, want: []outMsg{{"#ubuntu", "Found: ali, chanfoo, chanfoo-#ubuntu, foo, foo-also"}}},
		{name: "add", text: "!new is thing", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I'll remember that, ed"}},
			check: func(t *testing.T, st *memStore) { wantValue(t, st, "new", "thing") }},
		{name: "add exists", text: "!foo is thing", m: editor, primary: true, want: []outMsg{{"#ubuntu", "But foo already means something else!"}}},
		{name: "add forgotten exists", text: "!gone is thing", m: editor, primary: true, want: []outMsg{{"#ubuntu", "But gone already means something else!"}}},
		{name: "add also", text: "!greet is also hi", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I'll remember that, ed"}},
			check: func(t *testing.T, st *memStore) { wantValue(t, st, "greet-also", "hi") }},
		{name: "add alias", text: "!bar is <alias> ali", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I'll remember that, ed"}},
			check: func(t *testing.T, st *memStore) { wantValue(t, st, "bar", "<alias> foo") }},
		{name: "add alias missing", text: "!bar is <alias> nope", m: editor, primary: true, want: []outMsg{{"#ubuntu", "Factoid 'nope' does not exist"}}},
		{name: "replace", text: "!no, foo is baz", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I'll remember that ed"}},
			check: func(t *testing.T, st *memStore) { wantValue(t, st, "foo", "baz") }},
		{name: "replace alias asks confirmation", text: "!no, ali is <alias> greet", m: editor, primary: true, want: []outMsg{{"#ubuntu", msgAliasConfirm}}},
		{name: "replace missing", text: "!no, nope is baz", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I know nothing about nope yet, ed"}}},
		{name: "regex", text: `!foo =~ s/b(a)r/x\1$chan/`, m: editor, primary: true, want: []outMsg{{"#ubuntu", "I'll remember that ed"}},
			check: func(t *testing.T, st *memStore) { wantValue(t, st, "foo", "xa$chan") }},
		{name: "regex nothing", text: "!foo =~ s/zzz/y/", m: editor, primary: true, want: []outMsg{{"#ubuntu", "Nothing changed there"}}},
		{name: "regex bad", text: "!foo =~ s/(/y/", m: editor, primary: true, want: []outMsg{{"#ubuntu", "Malformed regex"}}},
		{name: "forget", text: "!forget foo", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I'll forget that, ed"}},
			check: func(t *testing.T, st *memStore) {
				if !st.facts["foo"].Forgotten {
					t.Fatal("not forgotten")
				}
			}},
		{name: "forget missing", text: "!forget nope", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I know nothing about nope yet, ed"}}},
		{name: "unforget", text: "!unforget gone", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I suddenly remember gone again, ed"}}},
		{name: "unforget not deleted", text: "!unforget foo", m: editor, primary: true, want: []outMsg{{"#ubuntu", "Factoid foo wasn't deleted yet, ed"}}},
		{name: "unforget missing", text: "!unforget nope", m: editor, primary: true, want: []outMsg{{"#ubuntu", "I knew nothing about nope at all, ed"}}},
		{name: "read only", text: "!new is thing", m: editor, primary: false, want: []outMsg{{"#ubuntu", "Sorry, I'm a read-only copy of the factoid database; please make edits with ubotu"}}},
		{name: "non editor forwarded", text: "!new is thing", m: user, primary: true, want: []outMsg{
			{"joe", "Your edit request has been forwarded to #ops.  Thank you for your attention to detail"},
			{"#ops", "In #ubuntu, joe said: !new is thing"},
		}},
		{name: "non editor private forwarded", text: "forget foo", m: private, primary: true, want: []outMsg{
			{"joe", "Your edit request has been forwarded to #ops.  Thank you for your attention to detail"},
			{"#ops", "In ubotu, joe said: forget foo"},
		}},
		{name: "non editor long is", text: "!the meaning of life and everything is 42", m: user, want: []outMsg{{"#ubuntu", "joe: Error: I am only a bot, please don't think I'm intelligent :)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemStore()
			seed(st)
			fx := newTestFactoids(st, tt.primary)
			pc := ParseContext{BotNick: "ubotu", Prefix: "!", Sender: tt.m.Nick, Channel: tt.m.Channel}
			cmd, ok := Parse(tt.text, pc)
			if !ok {
				t.Fatalf("Parse(%q) failed", tt.text)
			}
			tt.m.Raw = tt.text
			got := fx.run(cmd, tt.m)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

func wantValue(t *testing.T, st *memStore, name, value string) {
	t.Helper()
	f, err := st.GetFactoid(name)
	if err != nil || f.Value != value {
		t.Fatalf("%s = %q, %v; want %q", name, f.Value, err, value)
	}
}

func TestRepeatFilterAndAliasConfirm(t *testing.T) {
	st := newMemStore()
	st.editors = []string{"ed!*@*"}
	st.put("foo", "bar")
	st.put("ali", "<alias> foo")
	st.put("other", "x")
	now := time.Unix(1000, 0)
	fx := newTestFactoids(st, true)
	fx.now = func() time.Time { return now }
	m := msgCtx{Nick: "joe", Hostmask: "joe!j@h", Channel: "#c"}
	look := func(text string) []outMsg {
		cmd, _ := Parse(text, ParseContext{BotNick: "b", Prefix: "!", Sender: "joe", Channel: "#c"})
		return fx.run(cmd, m)
	}
	if got := look("!foo"); len(got) != 1 {
		t.Fatalf("first lookup %q", got)
	}
	if got := look("!foo"); len(got) != 0 {
		t.Fatalf("repeat not filtered: %q", got)
	}
	if got := look("!foo | bob"); len(got) != 1 || got[0].text != "bob: please see above" {
		t.Fatalf("suffix repeat: %q", got)
	}
	now = now.Add(31 * time.Second)
	if got := look("!foo"); len(got) != 1 {
		t.Fatalf("after 30 s: %q", got)
	}
	// alias edit needs a confirmation within 10 s
	ed := msgCtx{Nick: "ed", Hostmask: "ed!e@h", Channel: "#c"}
	cmd, _ := Parse("!no, ali is <alias> other", ParseContext{BotNick: "b", Prefix: "!", Sender: "ed", Channel: "#c"})
	if got := fx.run(cmd, ed); len(got) != 1 || got[0].text != msgAliasConfirm {
		t.Fatalf("first alias edit %q", got)
	}
	now = now.Add(5 * time.Second)
	if got := fx.run(cmd, ed); len(got) != 1 || got[0].text != "I'll remember that ed" {
		t.Fatalf("confirmed alias edit %q", got)
	}
	wantValue(t, st, "ali", "<alias> other")
}

func TestFactoidStoreErrors(t *testing.T) {
	st := newMemStore()
	st.put("foo", "bar")
	st.failGets = true
	var errs []error
	cfg := Config{Store: st, Now: time.Now, RelayChannel: "#ops", BotChannel: "#bots"}
	fx := newFactoids(&cfg, func(err error) { errs = append(errs, err) })
	cmd, _ := Parse("!foo", ParseContext{BotNick: "b", Prefix: "!", Sender: "joe", Channel: "#c"})
	if got := fx.run(cmd, msgCtx{Nick: "joe", Channel: "#c"}); len(got) != 0 {
		t.Fatalf("replied on db error: %q", got)
	}
	if len(errs) != 1 || !errors.Is(errs[0], errBoom) {
		t.Fatalf("errors %v", errs)
	}
}
