//go:build race

package mesh

// raceEnabled reports whether the race detector is on; it slows memberlist
// down ~10x, so the 50-node test uses the lan profile under it.
const raceEnabled = true
