package e2e

import (
	"slices"
	"testing"
	"time"
)

// TestHarnessObserver checks the test harness itself against ngircd: the
// config is accepted, the observer registers, joins, sees NAMES, records
// messages with the sender and parses answers.
func TestHarnessObserver(t *testing.T) {
	srv := startIRCd(t)
	a := dialIRC(t, srv.addr, "alice")
	b := dialIRC(t, srv.addr, "bob")
	a.join(testChan)
	b.join(testChan)
	ns, err := a.namesOf(testChan)
	if err != nil || !slices.Equal(ns, []string{"alice", "bob"}) {
		t.Fatalf("NAMES = %v (%v), want [alice bob]", ns, err)
	}
	asker := startAsker(b, testChan, 50*time.Millisecond, (&questionPool{max: 3}).take)
	eventually(t, 10*time.Second, 20*time.Millisecond, "alice sees 3 questions", func() error {
		if n := len(a.messages()); n != 3 {
			return errorf("alice has %d messages", n)
		}
		return nil
	})
	asked := asker.Stop()
	if len(asked) != 3 || asked[0].Name != "q000" || asked[2].Name != "q002" {
		t.Fatalf("asked %v, want q000..q002", asked)
	}
	a.privmsg(testChan, "q001 is ans-q001")
	eventually(t, 10*time.Second, 20*time.Millisecond, "bob sees the answer", func() error {
		ans := collectAnswers(b.messages(), testChan)
		if len(ans["q001"]) != 1 || ans["q001"][0].From != "alice" {
			return errorf("answers %v", ans)
		}
		return nil
	})
	b.Close()
	eventually(t, 10*time.Second, 20*time.Millisecond, "alice sees bob quit", func() error {
		for _, ev := range a.eventsList() {
			if ev.Command == "QUIT" && ev.Nick == "bob" {
				return nil
			}
		}
		return errorf("events %v", a.eventsList())
	})
}
