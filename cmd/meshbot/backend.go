package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/meshbot/meshbot/cmd/internal/ctlapi"
	"github.com/meshbot/meshbot/kvsync"
	"github.com/meshbot/meshbot/mesh"
)

// backend serves the control API from the daemon's parts.
type backend struct{ d *Daemon }

var _ ctlapi.Backend = (*backend)(nil)

// apiErr maps the libraries' sentinels to the control API's.
func apiErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kvsync.ErrNotFound):
		return ctlapi.Mark(ctlapi.ErrNotFound, err)
	case errors.Is(err, kvsync.ErrInvalid), errors.Is(err, mesh.ErrBadKey):
		return ctlapi.Mark(ctlapi.ErrInvalid, err)
	case errors.Is(err, kvsync.ErrUnhealthy), errors.Is(err, kvsync.ErrSnapshotsDisabled):
		return ctlapi.Mark(ctlapi.ErrUnavailable, err)
	}
	return err
}

func toAPIMember(m mesh.Member, self string) ctlapi.Member {
	return ctlapi.Member{
		Name: m.Name, Addr: m.Addr, Rank: m.Rank, Position: m.Position,
		Status: string(m.Status), Role: string(m.Role), Health: string(m.Health),
		HealthySince: m.HealthySince, IRCConnected: m.IRCConnected, IRCServer: m.IRCServer,
		Nick: m.Nick, LagMS: m.LagMS, Version: m.Version, Entries: m.Entries, Digest: m.Digest,
		Self: m.Name == self,
	}
}

func (b *backend) Members(ctx context.Context) ([]ctlapi.Member, error) {
	ms := b.d.mesh.Members()
	out := make([]ctlapi.Member, len(ms))
	for i, m := range ms {
		out[i] = toAPIMember(m, b.d.cfg.Name)
	}
	return out, nil
}

func (b *backend) Status(ctx context.Context) (ctlapi.Status, error) {
	d := b.d
	self := d.mesh.Self()
	alive := 0
	for _, m := range d.mesh.Members() {
		if m.Status == mesh.StatusAlive || m.Status == mesh.StatusSuspect {
			alive++
		}
	}
	st := d.store.Stats()
	ok, reason := d.store.Health()
	snaps, _ := d.store.Snapshots()
	s := ctlapi.Status{
		Name: d.cfg.Name, Rank: d.cfg.Rank, Role: string(self.Role), Active: d.mesh.Active(),
		Health: string(self.Health), Profile: d.cfg.Mesh.Profile, Failback: d.cfg.Mesh.Failback,
		Version: Version(), StartedAt: d.started, Members: alive,
		Store: ctlapi.StoreStatus{
			Healthy: ok, Reason: reason, Entries: st.Entries, Tombstones: st.Tombstones,
			Digest: st.Digest, SyncRounds: st.SyncRounds, LastSnapshot: st.LastSnapshot, Snapshots: len(snaps),
		},
	}
	if d.cfg.IRC != nil {
		d.mu.Lock()
		irc := d.ircState
		d.mu.Unlock()
		s.IRC = ctlapi.IRCStatus{Enabled: true, Connected: irc.Connected, Server: irc.Server, Nick: irc.Nick, LagMS: irc.LagMS}
	}
	if d.cfg.Mesh.Failback == "sticky" {
		ds, err := d.store.Demotions()
		if err != nil {
			return s, err
		}
		for _, x := range ds {
			s.Demotions = append(s.Demotions, ctlapi.Demotion{Node: x.Node, At: x.At})
		}
	}
	return s, nil
}

func (b *backend) Reorder(ctx context.Context) error { return apiErr(b.d.mesh.Reorder()) }

func (b *backend) Events(ctx context.Context, n int) ([]ctlapi.Event, error) {
	evs := b.d.mesh.Events(n)
	out := make([]ctlapi.Event, len(evs))
	for i, e := range evs {
		out[i] = ctlapi.Event{Time: e.Time, Type: e.Type, Node: e.Node, Detail: e.Detail}
	}
	return out, nil
}

func toAPIFactoid(f kvsync.Factoid) ctlapi.Factoid {
	return ctlapi.Factoid{
		Name: f.Name, Value: f.Value, Author: f.Author, Added: f.Added, UpdatedBy: f.UpdatedBy,
		Updated: f.Updated, Forgotten: f.Forgotten, Popularity: f.Popularity,
	}
}

func (b *backend) GetFactoid(ctx context.Context, name string) (ctlapi.Factoid, error) {
	f, err := b.d.store.GetFactoid(name)
	if err != nil {
		return ctlapi.Factoid{}, apiErr(err)
	}
	return toAPIFactoid(f), nil
}

func (b *backend) SetFactoid(ctx context.Context, name, value, author string) (ctlapi.Factoid, error) {
	if author == "" {
		author = "meshctl"
	}
	f, err := b.d.store.SetFactoid(name, value, author)
	if err != nil {
		return ctlapi.Factoid{}, apiErr(err)
	}
	return toAPIFactoid(f), nil
}

func (b *backend) ForgetFactoid(ctx context.Context, name, author string) error {
	if author == "" {
		author = "meshctl"
	}
	return apiErr(b.d.store.ForgetFactoid(name, author))
}

func (b *backend) FactoidLog(ctx context.Context, name string) ([]ctlapi.LogEntry, error) {
	log, err := b.d.store.FactoidLog(name)
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]ctlapi.LogEntry, len(log))
	for i, l := range log {
		out[i] = ctlapi.LogEntry{Name: l.Name, Author: l.Author, At: l.At, OldValue: l.OldValue, NewValue: l.NewValue}
	}
	return out, nil
}

func (b *backend) SearchFactoids(ctx context.Context, words string, limit int) ([]ctlapi.Factoid, error) {
	fs, err := b.d.store.SearchFactoids(words, limit)
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]ctlapi.Factoid, len(fs))
	for i, f := range fs {
		out[i] = toAPIFactoid(f)
	}
	return out, nil
}

// Import writes a batch in bulk (one fsync per 256 factoids, replicated by
// anti-entropy). If the batch holds an invalid factoid, it falls back to one
// write per factoid so that every bad one is named and the rest land.
func (b *backend) Import(ctx context.Context, req ctlapi.ImportRequest) (ctlapi.ImportResult, error) {
	items := make([]kvsync.ImportItem, len(req.Facts))
	for i, f := range req.Facts {
		it := kvsync.ImportItem{Factoid: kvsync.Factoid{
			Name: f.Name, Value: f.Value, Author: f.Author, Added: f.Added, UpdatedBy: f.UpdatedBy,
			Updated: f.Updated, Forgotten: f.Forgotten, Popularity: f.Popularity,
		}}
		for _, l := range f.Log {
			it.Log = append(it.Log, kvsync.LogEntry{Name: f.Name, Author: l.Author, At: l.At, OldValue: l.OldValue, NewValue: l.NewValue})
		}
		items[i] = it
	}
	var res ctlapi.ImportResult
	created, err := b.d.store.ImportFactoids(items)
	if err == nil {
		res.Created = created
		res.Unchanged = len(items) - created
		return res, nil
	}
	if !errors.Is(err, kvsync.ErrInvalid) {
		return res, apiErr(err)
	}
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		created, err := b.d.store.ImportFactoid(it.Factoid, it.Log)
		switch {
		case err != nil:
			res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", it.Factoid.Name, err))
		case created:
			res.Created++
		default:
			res.Unchanged++
		}
	}
	return res, nil
}

func (b *backend) Channels(ctx context.Context) ([]string, error) {
	chs, err := b.d.store.Channels()
	if chs == nil {
		chs = []string{}
	}
	return chs, apiErr(err)
}

func (b *backend) AddChannel(ctx context.Context, name string) error {
	return apiErr(b.d.store.AddChannel(name))
}

func (b *backend) RemoveChannel(ctx context.Context, name string) error {
	return apiErr(b.d.store.RemoveChannel(name))
}

func toAPISnapshot(s kvsync.Snapshot) ctlapi.Snapshot {
	return ctlapi.Snapshot{ID: s.ID, Time: s.Time, Size: s.Size, Entries: s.Entries, Verified: s.Verified, Path: s.Path}
}

func (b *backend) Snapshots(ctx context.Context) ([]ctlapi.Snapshot, error) {
	ss, err := b.d.store.Snapshots()
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]ctlapi.Snapshot, len(ss))
	for i, s := range ss {
		out[i] = toAPISnapshot(s)
	}
	return out, nil
}

func (b *backend) CreateSnapshot(ctx context.Context) (ctlapi.Snapshot, error) {
	s, err := b.d.store.CreateSnapshot()
	if err != nil {
		return ctlapi.Snapshot{}, apiErr(err)
	}
	return toAPISnapshot(s), nil
}

func (b *backend) RestoreSnapshot(ctx context.Context, id string) error {
	b.d.log.Warn("operator restore of snapshot", "id", id)
	return apiErr(b.d.store.RestoreSnapshot(id))
}

func (b *backend) Keys(ctx context.Context) (ctlapi.Keys, error) {
	keys, total, err := b.d.mesh.ListKeys()
	if err != nil {
		return ctlapi.Keys{}, apiErr(err)
	}
	k := ctlapi.Keys{Keys: keys, Members: total}
	if p := b.d.mesh.PrimaryKey(); p != nil {
		k.Primary = base64.StdEncoding.EncodeToString(p)
	}
	return k, nil
}

func (b *backend) InstallKey(ctx context.Context, key []byte) error {
	return apiErr(b.d.mesh.InstallKey(key))
}

func (b *backend) UseKey(ctx context.Context, key []byte) error {
	return apiErr(b.d.mesh.UseKey(key))
}

func (b *backend) RemoveKey(ctx context.Context, key []byte) error {
	return apiErr(b.d.mesh.RemoveKey(key))
}
