package kvsync

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	clk := &fakeClock{t: time.UnixMilli(1000)}
	c := NewClock(clk.Now, time.Hour)
	steps := []struct {
		name    string
		advance time.Duration
		remote  Timestamp // 0: local event
		want    Timestamp
		ok      bool
	}{
		{"first local event", 0, 0, MakeTimestamp(1000, 0), true},
		{"same ms ticks logical", 0, 0, MakeTimestamp(1000, 1), true},
		{"physical time moves on", time.Millisecond, 0, MakeTimestamp(1001, 0), true},
		{"remote ahead is absorbed", 0, MakeTimestamp(1500, 7), MakeTimestamp(1500, 8), true},
		{"local after remote sorts after it", 0, 0, MakeTimestamp(1500, 9), true},
		{"remote behind only ticks", 0, MakeTimestamp(900, 0), MakeTimestamp(1500, 10), true},
		{"physical catches up", time.Second, 0, MakeTimestamp(2001, 0), true},
		{"remote beyond skew is refused", 0, MakeTimestamp(2001+3600*1000+1, 0), MakeTimestamp(2001, 0), false},
	}
	for _, st := range steps {
		clk.Add(st.advance)
		if st.remote == 0 {
			if got := c.Now(); got != st.want {
				t.Fatalf("%s: Now = %s, want %s", st.name, got, st.want)
			}
			continue
		}
		if ok := c.Update(st.remote); ok != st.ok {
			t.Fatalf("%s: Update ok = %v", st.name, ok)
		}
		if got := c.Last(); got != st.want {
			t.Fatalf("%s: Last = %s, want %s", st.name, got, st.want)
		}
	}
	// Logical overflow carries into the physical part and stays monotonic.
	c2 := NewClock(func() time.Time { return time.UnixMilli(5) }, 0)
	prev := c2.Now()
	for range 70000 {
		n := c2.Now()
		if n <= prev {
			t.Fatalf("not monotonic: %s after %s", n, prev)
		}
		prev = n
	}
	if ts := MakeTimestamp(1234, 5); ts.Physical() != 1234 || ts.Logical() != 5 || ts.String() != "1234.5" || !ts.Time().Equal(time.UnixMilli(1234)) {
		t.Fatalf("timestamp parts: %v", ts)
	}
}

func TestRecordWins(t *testing.T) {
	base := Record{Keyspace: KeyspaceFactoids, Key: "k", Value: []byte("b"), TS: 10, Node: "n2"}
	mod := func(f func(r *Record)) Record { r := base; f(&r); return r }
	tests := []struct {
		name string
		r    Record
		want bool // r wins over base
	}{
		{"newer timestamp", mod(func(r *Record) { r.TS = 11; r.Node = "a" }), true},
		{"older timestamp", mod(func(r *Record) { r.TS = 9; r.Node = "z" }), false},
		{"same ts, larger node", mod(func(r *Record) { r.Node = "n3" }), true},
		{"same ts, smaller node", mod(func(r *Record) { r.Node = "n1" }), false},
		{"same version, tombstone", mod(func(r *Record) { r.Tombstone = true; r.Value = nil }), true},
		{"same version, larger value", mod(func(r *Record) { r.Value = []byte("c") }), true},
		{"identical", base, false},
	}
	for _, tc := range tests {
		if got := tc.r.Wins(base); got != tc.want {
			t.Errorf("%s: Wins = %v, want %v", tc.name, got, tc.want)
		}
		if tc.want && base.Wins(tc.r) {
			t.Errorf("%s: both win", tc.name)
		}
		// Merge is commutative.
		if a, b := Merge(tc.r, base), Merge(base, tc.r); a.TS != b.TS || a.Node != b.Node || !bytes.Equal(a.Value, b.Value) || a.Tombstone != b.Tombstone {
			t.Errorf("%s: Merge not commutative", tc.name)
		}
	}
}

func ExampleMerge() {
	a := Record{Keyspace: KeyspaceChannels, Key: "#ubuntu", Value: []byte("#ubuntu"), TS: MakeTimestamp(1000, 0), Node: "alpha"}
	b := Record{Keyspace: KeyspaceChannels, Key: "#ubuntu", TS: MakeTimestamp(1000, 1), Node: "beta", Tombstone: true}
	c := Record{Keyspace: KeyspaceChannels, Key: "#ubuntu", Value: []byte("#Ubuntu"), TS: MakeTimestamp(1000, 1), Node: "gamma"}
	w := Merge(Merge(a, b), c)
	fmt.Println(w.Node, w.TS, w.Tombstone, string(w.Value))
	w = Merge(c, Merge(b, a)) // any order, same winner
	fmt.Println(w.Node, w.TS, w.Tombstone, string(w.Value))
	// Output:
	// gamma 1000.1 false #Ubuntu
	// gamma 1000.1 false #Ubuntu
}

func wireCases() []*message {
	f := Factoid{Name: "x", Value: "y", Author: "a", Added: time.Unix(5, 0)}
	r1 := record{ks: ksFactoids, key: "x", value: encodeFactoid(f), ts: 77, node: "n1"}
	r2 := record{ks: ksChannels, key: "#c", ts: 78, node: "n2", tomb: true}
	return []*message{
		{typ: msgRecords, records: []record{r1, r2}},
		{typ: msgRecords},
		{typ: msgTreeReq, id: 9, level: 1, nodes: []treeEntry{{0, 1}, {15, 1 << 63}}},
		{typ: msgTreeResp, id: 9, level: 4, nodes: []treeEntry{{65535, 3}}},
		{typ: msgLeafReq, id: 1 << 40, buckets: []bucketHashes{{bucket: 7, hashes: []uint64{1, 2}}, {bucket: 65535}}},
		{typ: msgLeafResp, id: 3, more: true, records: []record{r1}, buckets: []bucketHashes{{bucket: 1, hashes: []uint64{4}}}},
		{typ: msgPushReq, id: 4, records: []record{r2}},
		{typ: msgPushResp, id: 5},
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range wireCases() {
		p := encodeMessage(m)
		got, err := decodeMessage(p)
		if err != nil {
			t.Fatalf("type %d: %v", m.typ, err)
		}
		if q := encodeMessage(got); !bytes.Equal(p, q) {
			t.Fatalf("type %d: re-encoding differs", m.typ)
		}
		if err := validateContents(got.records); err != nil {
			t.Fatalf("type %d: %v", m.typ, err)
		}
	}
	if p := encodeMessage(wireCases()[0]); len(p) > 100 {
		t.Fatalf("two small records take %d bytes", len(p))
	}
}

func TestWireRejects(t *testing.T) {
	good := encodeMessage(wireCases()[0])
	tests := []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"bad magic", []byte{'X', 1, 1, 0}},
		{"bad version", []byte{'K', 2, 1, 0}},
		{"unknown type", []byte{'K', 1, 99}},
		{"truncated", good[:len(good)-3]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"huge count", []byte{'K', 1, msgRecords, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"tree level 0", []byte{'K', 1, msgTreeReq, 1, 0, 0}},
		{"tree level 5", []byte{'K', 1, msgTreeReq, 1, 5, 0}},
		{"node index out of range", []byte{'K', 1, msgTreeReq, 1, 1, 1, 16, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"bucket out of range", []byte{'K', 1, msgLeafReq, 1, 1, 0x80, 0x80, 0x04, 0}},
		{"bad more flag", []byte{'K', 1, msgLeafResp, 1, 2, 0, 0}},
		{"unknown keyspace", append([]byte{'K', 1, msgRecords, 1, 'z', 1, 'k'}, append([]byte{13}, encodeValue(record{ts: 1, node: "n"})...)...)},
	}
	for _, tc := range tests {
		if _, err := decodeMessage(tc.p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
	bad := []record{
		{ks: ksFactoids, key: "UPPER", value: encodeFactoid(Factoid{Value: "v"}), ts: 1, node: "n"},
		{ks: ksFactoids, key: "x", value: []byte{1, 2, 3}, ts: 1, node: "n"},
		{ks: ksFactoids, key: "x", value: encodeFactoid(Factoid{Value: "a\nb"}), ts: 1, node: "n"},
		{ks: ksChannels, key: "nochan", value: []byte("nochan"), ts: 1, node: "n"},
		{ks: ksDemotions, key: "n", value: []byte{0xff}, ts: 1, node: "n"},
		{ks: ksLog, key: "x\x00", value: nil, ts: 1, node: "n", tomb: true},
		{ks: ksChannels, key: "#c", value: []byte("x"), ts: 1, node: "n", tomb: true},
		{ks: ksChannels, key: "#c", value: []byte("#c"), ts: 1, node: ""},
	}
	for i, r := range bad {
		if err := validateContents([]record{r}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad record %d: err = %v", i, err)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range wireCases() {
		f.Add(encodeMessage(m))
	}
	f.Add([]byte{'K', 1, msgTreeReq, 1, 5, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := decodeMessage(p)
		if err != nil {
			return
		}
		_ = validateContents(m.records)
		q := encodeMessage(m)
		m2, err := decodeMessage(q)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(encodeMessage(m2), q) {
			t.Fatal("encoding not stable")
		}
	})
}

func TestHandleMessageGarbage(t *testing.T) {
	s := openMem(t, "n1")
	for _, p := range [][]byte{nil, {1}, []byte("K\x01\x01\xff"), bytes.Repeat([]byte{0xff}, 100)} {
		s.HandleMessage("x", p)
	}
	if st := s.Stats(); st.Rejected != 4 || st.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A response nobody asked for is ignored.
	s.HandleMessage("x", encodeMessage(&message{typ: msgPushResp, id: 12345}))
}

func TestTreeMatchesScan(t *testing.T) {
	s := openMem(t, "n1")
	loadRecords(t, 500, s)
	if _, err := s.SetFactoid("factoid-0000001", "new", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddChannel("#x"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveChannel("#x"); err != nil {
		t.Fatal(err)
	}
	tree, tombs, err := scanTree(s.db)
	if err != nil {
		t.Fatal(err)
	}
	if tree.digest() != s.Digest() || len(tombs) != 1 || tree.count != s.tree.count {
		t.Fatalf("incremental tree %s/%d differs from rebuilt %s/%d", s.Digest(), s.tree.count, tree.digest(), tree.count)
	}
	for l := 0; l <= treeDepth; l++ {
		var x uint64
		for _, h := range tree.levels[l] {
			x ^= h
		}
		if x != tree.levels[0][0] {
			t.Fatalf("level %d does not XOR to the root", l)
		}
	}
}

func TestLargeBatchesSplit(t *testing.T) {
	for _, inMem := range []bool{true, false} {
		c := testConfig("n1")
		if !inMem {
			c.InMemory, c.Dir = false, t.TempDir()
		}
		s := openT(t, c)
		var rs []record
		big := bytes.Repeat([]byte("x"), maxValueLen)
		for i := range 300 {
			rs = append(rs, record{ks: ksLog, key: logKey("f", Timestamp(i+1), "n"), value: encodeLog(LogEntry{Author: "a", NewValue: string(big[:maxValueLen-20])}), ts: Timestamp(i + 1), node: "n"})
		}
		if n, err := s.applyRemote(rs); err != nil || n != 300 {
			t.Fatalf("inMemory=%v: applied %d: %v", inMem, n, err)
		}
		if ok, _ := s.Health(); !ok {
			t.Fatal("unhealthy after a big batch")
		}
		tree, _, err := scanTree(s.db)
		if err != nil || tree.digest() != s.Digest() {
			t.Fatalf("tree after split commits: %v", err)
		}
	}
}
