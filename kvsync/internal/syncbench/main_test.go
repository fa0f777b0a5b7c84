package main

import (
	"testing"
)

// TestOneDiffAndCatchUp runs the benchmark's measurements at a small size,
// so the program keeps working as the store changes.
func TestOneDiffAndCatchUp(t *testing.T) {
	rt, bytes, _, err := oneDiff(2000)
	if err != nil {
		t.Fatal(err)
	}
	if rt < 1 || rt > 4 || bytes <= 0 || bytes > 4096 {
		t.Errorf("one difference among 2000: %d round trips, %d bytes", rt, bytes)
	}
	if _, _, _, err := catchUp(200); err != nil {
		t.Fatal(err)
	}
	if vmRSS() <= 0 {
		t.Error("vmRSS read nothing")
	}
}
