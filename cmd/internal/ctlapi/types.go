// Package ctlapi is meshbot's control API: the wire types shared by the
// daemon and meshctl, the HTTP handler the daemon serves and the client
// meshctl uses. It imports no memberlist, Badger or girc code, so the CLI
// stays small.
//
// The API is HTTP/1.1 with JSON bodies, served on a Unix socket (mode 0600)
// and optionally on TCP with a bearer token. Every error response is a JSON
// [Error] with a non-2xx status.
package ctlapi

import "time"

// Member is one row of `meshctl members`. The JSON field names are part of
// the operator contract (DESIGN.md): add fields, never rename them.
type Member struct {
	Name         string    `json:"name"`
	Addr         string    `json:"addr"`
	Rank         int       `json:"rank"`
	Position     int       `json:"position"` // place in the effective order, 1-based; 0 = not ordered
	Status       string    `json:"status"`   // alive, suspect, dead, left
	Role         string    `json:"role"`     // active, standby, unhealthy
	Health       string    `json:"health"`   // ok, starting, db-error, irc-down, lagged, leaving
	HealthySince time.Time `json:"healthy_since,omitzero"`
	IRCConnected bool      `json:"irc_connected"`
	IRCServer    string    `json:"irc_server"`
	Nick         string    `json:"nick"`
	LagMS        int64     `json:"lag_ms"`
	Version      string    `json:"version"`
	Entries      int64     `json:"entries"`
	Digest       string    `json:"digest"`
	Self         bool      `json:"self"`
}

// Status describes the node that answers the request.
type Status struct {
	Name      string      `json:"name"`
	Rank      int         `json:"rank"`
	Role      string      `json:"role"`
	Active    string      `json:"active"` // name of the active node, "" if none
	Health    string      `json:"health"`
	Profile   string      `json:"profile"`
	Failback  string      `json:"failback"`
	Version   string      `json:"version"`
	StartedAt time.Time   `json:"started_at"`
	Members   int         `json:"members"` // members alive, including this node
	IRC       IRCStatus   `json:"irc"`
	Store     StoreStatus `json:"store"`
	Demotions []Demotion  `json:"demotions"`
}

// IRCStatus is the IRC side of [Status]. Enabled is false in mesh-only mode.
type IRCStatus struct {
	Enabled   bool   `json:"enabled"`
	Connected bool   `json:"connected"`
	Server    string `json:"server"`
	Nick      string `json:"nick"`
	LagMS     int64  `json:"lag_ms"`
}

// StoreStatus is the replicated store's side of [Status].
type StoreStatus struct {
	Healthy      bool      `json:"healthy"`
	Reason       string    `json:"reason,omitempty"`
	Entries      int64     `json:"entries"`
	Tombstones   int64     `json:"tombstones"`
	Digest       string    `json:"digest"`
	SyncRounds   int64     `json:"sync_rounds"`
	LastSnapshot time.Time `json:"last_snapshot,omitzero"`
	Snapshots    int       `json:"snapshots"`
}

// Demotion is a sticky-mode demotion: Node failed At and sits at the bottom
// of the effective order until the next reorder.
type Demotion struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// Event is one entry of the membership and failover history.
type Event struct {
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Node   string    `json:"node"`
	Detail string    `json:"detail"`
}

// Factoid is a factoid as stored.
type Factoid struct {
	Name       string    `json:"name"`
	Value      string    `json:"value"`
	Author     string    `json:"author"`
	Added      time.Time `json:"added"`
	UpdatedBy  string    `json:"updated_by,omitempty"`
	Updated    time.Time `json:"updated,omitzero"`
	Forgotten  bool      `json:"forgotten"`
	Popularity int64     `json:"popularity"`
}

// LogEntry is one edit of a factoid.
type LogEntry struct {
	Name     string    `json:"name"`
	Author   string    `json:"author"`
	At       time.Time `json:"at"`
	OldValue string    `json:"old_value"`
	NewValue string    `json:"new_value"`
}

// SetFactoidRequest is the body of PUT /v1/factoids/{name}.
type SetFactoidRequest struct {
	Value  string `json:"value"`
	Author string `json:"author"`
}

// ForgetRequest is the body of POST /v1/factoids/{name}/forget.
type ForgetRequest struct {
	Author string `json:"author"`
}

// ImportRequest is one batch of an Encyclopedia import.
type ImportRequest struct {
	Facts []ImportFact `json:"facts"`
}

// ImportFact is one factoid of an import batch, with its edit history.
type ImportFact struct {
	Factoid
	Log []LogEntry `json:"log,omitempty"`
}

// ImportResult reports what one import batch did.
type ImportResult struct {
	Created   int      `json:"created"`
	Unchanged int      `json:"unchanged"`        // factoids that existed before (updated or identical)
	Failed    []string `json:"failed,omitempty"` // "name: reason"
}

// ChannelRequest is the body of POST /v1/channels.
type ChannelRequest struct {
	Name string `json:"name"`
}

// Snapshot is one backup of the store.
type Snapshot struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Size     int64     `json:"size"`
	Entries  int64     `json:"entries"`
	Verified bool      `json:"verified"`
	Path     string    `json:"path"`
}

// KeyRequest is the body of the key operations.
type KeyRequest struct {
	Key string `json:"key"` // base64
}

// Keys is the answer of GET /v1/keys: each installed key (base64) with the
// number of members that have it.
type Keys struct {
	Primary string         `json:"primary"`
	Keys    map[string]int `json:"keys"`
	Members int            `json:"members"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}
