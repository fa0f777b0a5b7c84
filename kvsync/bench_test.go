package kvsync

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Benchmarks. Run with
//
//	go test -p 1 -run '^$' -bench . -benchtime 3x ./kvsync/
//
// kvsync/internal/syncbench prints the same figures as a table, with RSS.

func importN(b testing.TB, s *Store, n int) {
	b.Helper()
	items := make([]ImportItem, 0, 1000)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("factoid-%07d", i)
		items = append(items, ImportItem{Factoid: Factoid{Name: name, Value: "the value of " + name + " is something useful", Author: "bench", Added: time.Unix(1e9, 0)}})
		if len(items) == cap(items) || i == n-1 {
			if _, err := s.ImportFactoids(items); err != nil {
				b.Fatal(err)
			}
			items = items[:0]
		}
	}
}

func BenchmarkGetFactoid100k(b *testing.B) {
	s := openDisk(b, "bench", b.TempDir())
	importN(b, s, 100_000)
	lat := make([]time.Duration, 0, b.N)
	r := rand.New(rand.NewPCG(1, 1))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("factoid-%07d", r.IntN(100_000))
		t0 := time.Now()
		if _, err := s.GetFactoid(name); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

func benchOneDiff(b *testing.B, n int) {
	net := newMemNet()
	a, c := openMem(b, "a"), openMem(b, "b")
	net.add(a)
	net.add(c)
	loadRecords(b, n, a, c)
	net.setLoss(1)
	b.ResetTimer()
	var rts, bytes int64
	for i := 0; i < b.N; i++ {
		if _, err := c.SetFactoid(fmt.Sprintf("factoid-%07d", i%n), fmt.Sprintf("changed %d", i), "x"); err != nil {
			b.Fatal(err)
		}
		sa, sb := a.Stats(), c.Stats()
		syncOnce(b, a, "b")
		ea, eb := a.Stats(), c.Stats()
		rts += ea.SyncRoundTrips - sa.SyncRoundTrips
		bytes += ea.SyncBytesSent - sa.SyncBytesSent + eb.SyncBytesSent - sb.SyncBytesSent
		if a.Digest() != c.Digest() {
			b.Fatal("not repaired")
		}
	}
	b.ReportMetric(float64(rts)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/op")
}

func BenchmarkAntiEntropyOneDiff(b *testing.B) {
	b.Run("100k", func(b *testing.B) { benchOneDiff(b, 100_000) })
	b.Run("1M", func(b *testing.B) { benchOneDiff(b, 1_000_000) })
}

func BenchmarkCatchUp10k(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		net := newMemNet()
		a := openMem(b, "a")
		c := openDisk(b, "b", b.TempDir())
		net.add(a)
		net.add(c)
		importN(b, a, 1000)
		syncOnce(b, a, "b")
		net.setLoss(1)
		for j := 0; j < 10_000; j++ {
			if _, err := a.SetFactoid(fmt.Sprintf("factoid-%07d", j%1000), fmt.Sprintf("edit %d", j), "x"); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		syncOnce(b, c, "a")
		b.StopTimer()
		if a.Digest() != c.Digest() {
			b.Fatal("not caught up")
		}
		_ = a.Close()
		_ = c.Close()
	}
}
