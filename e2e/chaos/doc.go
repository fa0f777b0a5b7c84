// Package chaos is meshbot's failover suite on Docker: real meshbot
// binaries in FROM scratch containers on a test-created Docker network,
// ngircd on the host, and faults injected one after the other into one
// 3-node cluster (kill, freeze, partitions, packet delay and loss, IRC
// server restart, database corruption, rolling restart).
//
// The suite itself is behind the build tag chaos:
//
//	make chaos
//	go test -count=1 -timeout 15m -tags chaos -v -run TestChaos ./e2e/chaos/
//
// It needs a working `docker` (engine reachable, permission to create
// networks and containers) and /usr/sbin/ngircd; when either is missing the
// test fails with the reason, it never skips. Set CHAOS_KEEP_LOGS=DIR to
// keep every node's log and the IRC transcript in DIR.
//
// The user-space fault injector ([Proxy]: a delaying, dropping and
// filtering UDP+TCP relay, needed because this kernel has no netem) and the
// IRC observer client ([Observer]) are ordinary code in this package with
// unit tests that run without Docker (`go test ./e2e/chaos/`).
package chaos
