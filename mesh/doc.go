// Package mesh is meshbot's membership layer: it runs a
// hashicorp/memberlist node, publishes this node's metadata (rank, health,
// IRC state, store digest) in gossip, tracks every member seen during the
// run (alive, dead or left, with its last metadata) and decides, the same
// way on every node, which member is active (see Decide).
//
// Lifecycle: New (validation only), SetHandler, Start (memberlist + initial
// join), then Leave (graceful) and Shutdown. A node starts with
// Health=starting; the owner calls UpdateMeta to set HealthOK when it can
// serve.
//
// Goroutines owned by a Mesh (all stopped by Shutdown):
//   - the decision loop: re-evaluates on every change and every 100 ms,
//     applies sticky demotions, detects process freezes, writes the known
//     peers file;
//   - the dispatcher: delivers incoming messages to the handler and answers
//     control messages (leave intents, key operations);
//   - the publisher: sends metadata updates through memberlist;
//   - the retry loop: re-joins seeds, known peers and failed members.
//
// Wire format: memberlist user messages carry a 1-byte type, the sender's
// name (1-byte length + bytes) and a body; metadata is a compact varint
// encoding that always fits memberlist's 512-byte limit. Malformed input
// from the network is dropped (and counted in Stats.DroppedMessages);
// undecodable metadata makes that member unhealthy.
//
// Package mesh/meshtest provides an in-memory network with packet loss,
// delay and partitions for tests.
package mesh
