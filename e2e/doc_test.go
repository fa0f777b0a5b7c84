// Package e2e runs the real meshbot and meshctl binaries against each other
// and against a real IRC server (ngircd).
//
// TestMain builds bin/meshbot and bin/meshctl once into a temporary
// directory from the module root, so the tests always exercise the current
// tree. Every daemon and ngircd runs in its own process group with a
// parent-death signal and is killed when its test ends (also on failure or
// panic); their stderr is captured to files whose last lines are printed
// when a test fails.
//
// Run everything (about 4-5 minutes on 2 cores; the IRC tests need ngircd,
// "apt-get install -y ngircd"):
//
//	go test -p 1 -timeout 20m ./e2e/ -v
//
// Run one scenario:
//
//	go test ./e2e/ -v -run TestIRCKillActive
//
// Measured values are printed as "FIGURE name=value" lines; collect them
// with:
//
//	go test ./e2e/ -v 2>&1 | grep FIGURE
//
// The tests follow the project's rules: no timed assertions ("eventually"
// conditions poll with generous deadlines), fixed waits only where the
// scenario needs time to pass (preempt_delay, a frozen node).
package e2e
