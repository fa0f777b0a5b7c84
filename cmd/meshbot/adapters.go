package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshbot/meshbot/bot"
	"github.com/meshbot/meshbot/kvsync"
	"github.com/meshbot/meshbot/mesh"
)

// demotions backs the mesh's sticky-mode demotions with the replicated
// store, so every node agrees on them.
type demotions struct{ s *kvsync.Store }

var _ mesh.Demotions = demotions{}

func (d demotions) Demotions() ([]mesh.Demotion, error) {
	ds, err := d.s.Demotions()
	if err != nil {
		return nil, err
	}
	out := make([]mesh.Demotion, len(ds))
	for i, x := range ds {
		out[i] = mesh.Demotion{Node: x.Node, At: x.At}
	}
	return out, nil
}

func (d demotions) Demote(node string, at time.Time) error { return d.s.Demote(node, at) }
func (d demotions) ClearDemotions() error                  { return d.s.ClearDemotions() }

// botStore adapts the replicated store to the bot. Editors are the
// config's editors plus the store's local ones.
type botStore struct {
	s       *kvsync.Store
	editors []string
}

var _ bot.Store = botStore{}

func toBotFactoid(f kvsync.Factoid) bot.Factoid {
	return bot.Factoid{
		Name: f.Name, Value: f.Value, Author: f.Author, Added: f.Added,
		UpdatedBy: f.UpdatedBy, Updated: f.Updated, Forgotten: f.Forgotten, Popularity: f.Popularity,
	}
}

// botErr maps kvsync's not-found to the bot's.
func botErr(err error) error {
	if errors.Is(err, kvsync.ErrNotFound) {
		return fmt.Errorf("%w: %w", bot.ErrNotFound, err)
	}
	return err
}

func (b botStore) GetFactoid(name string) (bot.Factoid, error) {
	f, err := b.s.GetFactoid(name)
	return toBotFactoid(f), botErr(err)
}

func (b botStore) SetFactoid(name, value, author string) (bot.Factoid, error) {
	f, err := b.s.SetFactoid(name, value, author)
	return toBotFactoid(f), botErr(err)
}

func (b botStore) ForgetFactoid(name, author string) error {
	return botErr(b.s.ForgetFactoid(name, author))
}

func (b botStore) UnforgetFactoid(name, author string) error {
	return botErr(b.s.UnforgetFactoid(name, author))
}

func (b botStore) SearchFactoids(words string, limit int) ([]bot.Factoid, error) {
	fs, err := b.s.SearchFactoids(words, limit)
	out := make([]bot.Factoid, len(fs))
	for i, f := range fs {
		out[i] = toBotFactoid(f)
	}
	return out, botErr(err)
}

func (b botStore) CountLookup(name string) error { return botErr(b.s.CountLookup(name)) }
func (b botStore) Channels() ([]string, error)   { return b.s.Channels() }

func (b botStore) Editors() ([]string, error) {
	local, err := b.s.Editors()
	if err != nil {
		return slices.Clone(b.editors), err
	}
	return append(slices.Clone(b.editors), local...), nil
}

// view translates the mesh's members into the bot's view of the mesh.
func (d *Daemon) view() bot.View {
	members := d.mesh.Members()
	v := bot.View{Self: d.cfg.Name, Active: d.mesh.Active(), Order: make([]bot.Peer, 0, len(members))}
	firstStandby := ""
	for _, m := range members {
		v.Order = append(v.Order, bot.Peer{
			Name:    m.Name,
			Nick:    m.Nick,
			Rank:    m.Rank,
			Alive:   m.Status == mesh.StatusAlive || m.Status == mesh.StatusSuspect,
			Leaving: m.Status == mesh.StatusLeft || m.Health == mesh.HealthLeaving,
			Healthy: m.Health == mesh.HealthOK,
		})
		if firstStandby == "" && m.Role == mesh.RoleStandby {
			firstStandby = m.Name
		}
	}
	v.HotStandby = d.cfg.IRC != nil && d.cfg.IRC.HotStandby && firstStandby == d.cfg.Name
	return v
}

// primary is the first node of the static order among all known members:
// the only one that accepts factoid edits from IRC.
func (d *Daemon) primary() mesh.Member {
	members := d.mesh.Members()
	best := d.mesh.Self()
	for _, m := range members {
		if m.Rank < best.Rank || (m.Rank == best.Rank && m.Name < best.Name) {
			best = m
		}
	}
	return best
}

func (d *Daemon) newBot() (*bot.Bot, error) {
	ic := d.cfg.IRC
	bc := bot.DefaultConfig()
	bc.Name = d.cfg.Name
	bc.Servers = ic.Servers
	bc.TLS = ic.TLS
	bc.TLSInsecureSkipVerify = ic.TLSInsecure
	bc.Nick = ic.Nick
	bc.SASLUser = ic.SASLUser
	bc.SASLPassword = d.saslPwd
	bc.BotChannel = ic.BotChannel
	bc.RelayChannel = ic.RelayChannel
	bc.Prefix = ic.Prefix
	bc.Hedge = ic.Hedge.D()
	bc.HotStandby = ic.HotStandby
	bc.LagLimit = ic.LagLimit.D()
	bc.PingInterval = ic.PingInterval.D()
	bc.HandoffTimeout = ic.HandoffTimeout.D()
	bc.IsPrimary = func() bool { return d.primary().Name == d.cfg.Name }
	bc.PrimaryNick = func() string {
		p := d.primary()
		if p.Nick != "" {
			return p.Nick
		}
		return p.Name
	}
	bc.Store = botStore{s: d.store, editors: d.cfg.Editors}
	bc.OnState = func(st bot.State) {
		d.mu.Lock()
		d.ircState = st
		d.mu.Unlock()
		d.kickHealth()
	}
	bc.OnReorder = func(by string) error {
		d.log.Info("reorder requested on IRC", "by", by)
		return d.mesh.Reorder()
	}
	bc.Logger = d.log
	b, err := bot.New(bc)
	if err != nil {
		return nil, fmt.Errorf("irc: %w", err)
	}
	return b, nil
}
