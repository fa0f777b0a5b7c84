package bot

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var chanCtx = ParseContext{BotNick: "ubotu", Prefix: "!", Sender: "alice", Channel: "#ubuntu"}
var privCtx = ParseContext{BotNick: "ubotu", Prefix: "!", Sender: "alice"}

var parseTests = []struct {
	name string
	text string
	ctx  ParseContext
	ok   bool
	want Command // Text is not compared
}{
	{"prefix lookup", "!foo", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu"}},
	{"upper case", "!FoO", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu"}},
	{"nick colon", "ubotu: foo", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu"}},
	{"nick comma", "UBOTU, foo", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu"}},
	{"prefix nick", "!ubotu foo", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu"}},
	{"bot name", "!ubotu", chanCtx, true, Command{Kind: KindLookup, Name: "ubotu", Target: "#ubuntu"}},
	{"not addressed", "hello foo", chanCtx, false, Command{}},
	{"nick prefix of word", "ubotufoo", chanCtx, false, Command{}},
	{"empty", "", chanCtx, false, Command{}},
	{"only prefix", "!", chanCtx, false, Command{}},
	{"only punctuation", "!!!", chanCtx, false, Command{}},
	{"ctcp", "\x01ACTION !foo\x01", chanCtx, false, Command{}},
	{"private", "foo", privCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "alice"}},
	{"private prefixed", "!foo", privCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "alice"}},
	{"tell >", "!foo > bob", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "bob", RetMsg: "alice wants you to know: "}},
	{"pipe", "!foo | bob", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu", RetMsg: "bob: "}},
	{"tell about", "!tell bob about foo", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "bob", RetMsg: "alice wants you to know: "}},
	{"> self", "!foo > alice", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "alice", RetMsg: msgPrivateHint}},
	{"> me", "!foo > me", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "alice", RetMsg: msgPrivateHint}},
	{"| self", "!foo | alice", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "alice", RetMsg: msgPrivateHint}},
	{"> other channel", "!foo > #other", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu"}},
	{"> invalid nick", "!foo > 9x", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu"}},
	{"> nothing", "!foo >", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu", RetMsg: "alice wants you to know: "}},
	{"info", "!-foo", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu", Info: true}},
	{"raw", "!+foo", chanCtx, true, Command{Kind: KindLookup, Name: "foo", Target: "#ubuntu", Raw: true}},
	{"bug ignored", "!bug 123", chanCtx, false, Command{}},
	{"search", "!search Foo  bar", chanCtx, true, Command{Kind: KindSearch, Words: "foo  bar", Target: "#ubuntu"}},
	{"add", "!Foo is Bar baz", chanCtx, true, Command{Kind: KindAdd, Name: "foo", Value: "Bar baz", Target: "#ubuntu"}},
	{"add also", "!foo is also more", chanCtx, true, Command{Kind: KindAdd, Name: "foo-also", Value: "more", Target: "#ubuntu"}},
	{"is with > is a lookup", "!foo is <reply> hi > there", chanCtx, true, Command{Kind: KindLookup, Name: "foo is <reply> hi", Target: "there", RetMsg: "alice wants you to know: "}},
	{"add alias", "!foo is <alias> bar", chanCtx, true, Command{Kind: KindAdd, Name: "foo", Value: "<alias> bar", Target: "#ubuntu"}},
	{"is with pipe is a lookup", "!foo is bar | x", chanCtx, true, Command{Kind: KindLookup, Name: "foo is bar", Target: "#ubuntu", RetMsg: "x: "}},
	{"replace", "!no, foo is baz", chanCtx, true, Command{Kind: KindReplace, Name: "foo", Value: "baz", Target: "#ubuntu"}},
	{"replace no space", "!no foo is baz", chanCtx, true, Command{Kind: KindReplace, Name: "foo", Value: "baz", Target: "#ubuntu"}},
	{"regex", "!foo =~ s/a/b/", chanCtx, true, Command{Kind: KindRegex, Name: "foo", Pattern: "a", Replacement: "b", Target: "#ubuntu"}},
	{"regex ~=", "!foo ~= s#a#b#", chanCtx, true, Command{Kind: KindRegex, Name: "foo", Pattern: "a", Replacement: "b", Target: "#ubuntu"}},
	{"regex sed", "!foo is <sed> s/a/b/", chanCtx, true, Command{Kind: KindRegex, Name: "foo", Pattern: "a", Replacement: "b", Target: "#ubuntu"}},
	{"regex no end", "!foo =~ s/a/b", chanCtx, true, Command{Kind: KindRegex, Name: "foo", Target: "#ubuntu", Err: "Missing end delimiter"}},
	{"regex empty", "!foo =~", chanCtx, true, Command{Kind: KindRegex, Name: "foo", Target: "#ubuntu", Err: "Missing end delimiter"}},
	{"regex too many", "!foo =~ s/a/b/c/", chanCtx, true, Command{Kind: KindRegex, Name: "foo", Target: "#ubuntu", Err: "Too many (or not enough) delimiters"}},
	{"regex bad", "!foo =~ s/(/b/", chanCtx, true, Command{Kind: KindRegex, Name: "foo", Target: "#ubuntu", Err: "Malformed regex"}},
	{"regex long", "!foo =~ s/" + strings.Repeat("a", 300) + "/b/", chanCtx, true, Command{Kind: KindRegex, Name: "foo", Target: "#ubuntu", Err: "Malformed regex (longer than 256 bytes)"}},
	{"search without words is a lookup", "!search  ", chanCtx, true, Command{Kind: KindLookup, Name: "search", Target: "#ubuntu"}},
	{"search only spaces", "!search  \t", chanCtx, true, Command{Kind: KindLookup, Name: "search", Target: "#ubuntu"}},
	{"no without value", "!no, is x", chanCtx, false, Command{}},
	{"forget", "!forget Foo", chanCtx, true, Command{Kind: KindForget, Name: "foo", Target: "#ubuntu"}},
	{"unforget", "!unforget foo", chanCtx, true, Command{Kind: KindUnforget, Name: "foo", Target: "#ubuntu"}},
	{"reorder", "@reorder", chanCtx, true, Command{Kind: KindReorder, Target: "#ubuntu"}},
	{"reorder private", "@reorder", privCtx, false, Command{}},
	{"invalid utf8", "!f\xffo", chanCtx, true, Command{Kind: KindLookup, Name: "f\uFFFDo", Target: "#ubuntu"}},
	{"unicode name", "!ñandú", chanCtx, true, Command{Kind: KindLookup, Name: "ñandú", Target: "#ubuntu"}},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.text, tt.ctx)
			if ok != tt.ok {
				t.Fatalf("Parse(%q) ok=%v, want %v (%+v)", tt.text, ok, tt.ok, got)
			}
			got.Text = ""
			if got != tt.want {
				t.Fatalf("Parse(%q)\n got %+v\nwant %+v", tt.text, got, tt.want)
			}
		})
	}
}

func TestHelpTable(t *testing.T) {
	h := Help()
	if len(h) != len(commandTable) {
		t.Fatalf("help has %d lines", len(h))
	}
	for i, c := range commandTable {
		if c.Name == "" || c.Help == "" || c.Match == nil || c.Parse == nil || h[i] != c.Help {
			t.Fatalf("bad table row %d: %+v", i, c.Name)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.text, tt.ctx.Channel != "")
	}
	f.Fuzz(func(t *testing.T, text string, inChan bool) {
		ctx := privCtx
		if inChan {
			ctx = chanCtx
		}
		cmd, ok := Parse(text, ctx)
		if !ok {
			return
		}
		for _, s := range []string{cmd.Name, cmd.Value, cmd.Target, cmd.RetMsg, cmd.Words} {
			if strings.ContainsAny(s, "\r\n\x00") || !utf8.ValidString(s) {
				t.Fatalf("unsafe field %q from %q", s, text)
			}
		}
		if cmd.Target == "" {
			t.Fatalf("empty target from %q", text)
		}
		if cmd.Kind == KindRegex && cmd.Err == "" {
			if _, ok := regexReplaceFirst(cmd.Pattern, cmd.Replacement, "some value"); !ok {
				t.Fatalf("accepted bad regex %q", cmd.Pattern)
			}
		}
	})
}
