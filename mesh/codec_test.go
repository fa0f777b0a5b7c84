package mesh

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var metaCases = []struct {
	name string
	meta Meta
	want Meta // expected after round trip; zero = same as meta
}{
	{name: "zero", meta: Meta{}},
	{name: "typical", meta: Meta{
		Rank: 2, Health: HealthOK, HealthySince: time.UnixMilli(1767268800123),
		IRCConnected: true, IRCServer: "irc.libera.chat:6697", Nick: "ubotu2",
		LagMS: 120, Version: "v1.2.3", Entries: 12345, Digest: "abcdef0123456789",
	}},
	{name: "negative values", meta: Meta{Rank: -3, LagMS: -1, Entries: -5, Health: HealthDBError}},
	{
		name: "long strings are truncated",
		meta: Meta{
			Rank: 1, Health: Health(strings.Repeat("h", 100)),
			IRCServer: strings.Repeat("s", 300), Nick: strings.Repeat("n", 300),
			Version: strings.Repeat("v", 300), Digest: strings.Repeat("d", 300),
			LagMS: 1 << 62, Entries: 1 << 62,
		},
		want: Meta{
			Rank: 1, Health: Health(strings.Repeat("h", maxHealthLen)),
			IRCServer: strings.Repeat("s", maxServerLen), Nick: strings.Repeat("n", maxNickLen),
			Version: strings.Repeat("v", maxVersionLen), Digest: strings.Repeat("d", maxDigestLen),
			LagMS: 1 << 62, Entries: 1 << 62,
		},
	},
	{
		name: "truncation keeps UTF-8 valid",
		meta: Meta{Nick: strings.Repeat("a", maxNickLen-1) + "é"},
		want: Meta{Nick: strings.Repeat("a", maxNickLen-1)},
	},
}

func TestMetaRoundTrip(t *testing.T) {
	for _, tt := range metaCases {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeMeta(tt.meta)
			if len(b) > metaMaxSize {
				t.Fatalf("encoded size %d > %d", len(b), metaMaxSize)
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := tt.want
			if want == (Meta{}) {
				want = tt.meta
			}
			if !got.HealthySince.Equal(want.HealthySince) {
				t.Errorf("HealthySince = %v, want %v", got.HealthySince, want.HealthySince)
			}
			got.HealthySince, want.HealthySince = time.Time{}, time.Time{}
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestDecodeMetaErrors(t *testing.T) {
	good := encodeMeta(metaCases[1].meta)
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-3]},
		{"only version", []byte{metaVersion}},
		{"too long", make([]byte, metaMaxSize+1)},
		{"string length beyond input", []byte{metaVersion, 2, 40, 'o', 'k'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeMeta(tt.in); !errors.Is(err, errBadMeta) {
				t.Fatalf("err = %v, want errBadMeta", err)
			}
		})
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, tt := range metaCases {
		f.Add(encodeMeta(tt.meta))
	}
	f.Add([]byte{})
	f.Add([]byte{metaVersion, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Anything that decodes re-encodes to something that decodes to
		// the same value.
		m2, err := decodeMeta(encodeMeta(m))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !m.HealthySince.Equal(m2.HealthySince) {
			t.Fatalf("HealthySince changed")
		}
		m.HealthySince, m2.HealthySince = time.Time{}, time.Time{}
		if m != m2 {
			t.Fatalf("round trip changed %+v to %+v", m, m2)
		}
	})
}

var envelopeCases = []struct {
	name string
	typ  byte
	from string
	id   uint64
	body []byte
}{
	{"app", msgApp, "ubotu", 0, []byte("hello")},
	{"broadcast", msgBroadcast, "n", 0xdeadbeef, []byte{1, 2, 3}},
	{"leave empty body", msgLeave, "ubotu2", 0, nil},
	{"key request", msgKeyReq, strings.Repeat("x", maxNameLen), 0, []byte(`{"id":1}`)},
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, tt := range envelopeCases {
		t.Run(tt.name, func(t *testing.T) {
			e, err := decodeEnvelope(encodeEnvelope(tt.typ, tt.from, tt.id, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if e.typ != tt.typ || e.from != tt.from || e.id != tt.id || !bytes.Equal(e.body, tt.body) {
				t.Fatalf("got %+v", e)
			}
		})
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"one byte", []byte{msgApp}},
		{"unknown type", []byte{0, 1, 'a'}},
		{"type too big", []byte{99, 1, 'a'}},
		{"empty name", []byte{msgApp, 0}},
		{"name longer than input", []byte{msgApp, 5, 'a'}},
		{"name too long", append([]byte{msgApp, maxNameLen + 1}, make([]byte, maxNameLen+1)...)},
		{"broadcast without id", []byte{msgBroadcast, 1, 'a', 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeEnvelope(tt.in); !errors.Is(err, errBadEnvelope) {
				t.Fatalf("err = %v, want errBadEnvelope", err)
			}
		})
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, tt := range envelopeCases {
		f.Add(encodeEnvelope(tt.typ, tt.from, tt.id, tt.body))
	}
	f.Add([]byte{msgBroadcast, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		again := encodeEnvelope(e.typ, e.from, e.id, e.body)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encode differs: %x vs %x", again, b)
		}
	})
}

var keyringFileCases = []struct {
	name    string
	in      string
	wantN   int
	wantErr bool
}{
	{"one key", `["AAAAAAAAAAAAAAAAAAAAAA=="]`, 1, false},
	{"two keys", `["AAAAAAAAAAAAAAAAAAAAAA==","AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]`, 2, false},
	{"empty", `[]`, 0, true},
	{"not json", `nope`, 0, true},
	{"bad base64", `["!!"]`, 0, true},
	{"bad length", `["AAAA"]`, 0, true},
}

func TestParseKeyringFile(t *testing.T) {
	for _, tt := range keyringFileCases {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseKeyringFile([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadKey) {
				t.Fatalf("err = %v, want ErrBadKey", err)
			}
			if len(keys) != tt.wantN {
				t.Fatalf("got %d keys, want %d", len(keys), tt.wantN)
			}
		})
	}
}

func FuzzParseKeyringFile(f *testing.F) {
	for _, tt := range keyringFileCases {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := parseKeyringFile(b)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
	})
}

var knownPeersCases = []struct {
	name    string
	in      string
	want    int
	wantErr bool
}{
	{"two", `["127.0.0.1:7946","[::1]:7947"]`, 2, false},
	{"empty", `[]`, 0, false},
	{"no port", `["127.0.0.1"]`, 0, true},
	{"bad port", `["h:99999"]`, 0, true},
	{"not json", `{`, 0, true},
}

func TestParseKnownPeers(t *testing.T) {
	for _, tt := range knownPeersCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKnownPeers([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != tt.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func FuzzParseKnownPeers(f *testing.F) {
	for _, tt := range knownPeersCases {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := parseKnownPeers(b)
		if err != nil {
			return
		}
		for _, p := range peers {
			if err := validateHostPort("peer", p); err != nil {
				t.Fatalf("accepted bad peer %q", p)
			}
		}
	})
}

func TestConfigValidation(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Name = "a"
		return c
	}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr error
	}{
		{"default ok", func(*Config) {}, nil},
		{"empty name", func(c *Config) { c.Name = "" }, ErrBadConfig},
		{"long name", func(c *Config) { c.Name = strings.Repeat("a", maxNameLen+1) }, ErrBadConfig},
		{"bad bind", func(c *Config) { c.BindAddr = "nope" }, ErrBadConfig},
		{"bad advertise", func(c *Config) { c.AdvertiseAddr = "1.2.3.4:x" }, ErrBadConfig},
		{"bad join", func(c *Config) { c.Join = []string{"h"} }, ErrBadConfig},
		{"bad key", func(c *Config) { c.Keys = [][]byte{make([]byte, 15)} }, ErrBadKey},
		{"bad profile", func(c *Config) { c.Profile = "slow" }, ErrBadConfig},
		{"bad failback", func(c *Config) { c.Failback = "never" }, ErrBadConfig},
		{"negative delay", func(c *Config) { c.PreemptDelay = -1 }, ErrBadConfig},
		{"negative retry", func(c *Config) { c.RetryInterval = -1 }, ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			m, err := New(c)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if m != nil {
				if err := m.Shutdown(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestLogBridgeLevels(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ml := newMemberlistLogger(l)
	ml.Printf("[ERR] memberlist: boom")
	ml.Printf("[WARN] memberlist: careful")
	ml.Printf("[DEBUG] memberlist: chatter")
	ml.Printf("plain line")
	out := buf.String()
	for _, want := range []string{"level=ERROR msg=\"memberlist: boom\"", "level=WARN msg=\"memberlist: careful\"", "level=INFO msg=\"plain line\""} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "chatter") {
		t.Errorf("debug line logged at info level:\n%s", out)
	}
	buf.Reset()
	ml.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=127.0.0.1:1")
	if out := buf.String(); !strings.Contains(out, "hint=\"the peer uses another gossip key") {
		t.Errorf("decrypt failure without a hint:\n%s", out)
	}
}

func TestEventRing(t *testing.T) {
	var r eventRing
	if got := r.last(5); len(got) != 0 {
		t.Fatalf("empty ring returned %d", len(got))
	}
	for i := range eventRingSize + 5 {
		r.add(Event{Node: string(rune('a' + i%26)), Detail: strings.Repeat("x", i%3)})
	}
	all := r.last(0)
	if len(all) != eventRingSize {
		t.Fatalf("len = %d", len(all))
	}
	last2 := r.last(2)
	if last2[1] != all[len(all)-1] || last2[0] != all[len(all)-2] {
		t.Fatalf("last(2) = %v", last2)
	}
}
