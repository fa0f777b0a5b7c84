package bot

import (
	"testing"
	"time"

	"github.com/lrstanley/girc"
)

// BenchmarkAnswer measures the path from a PRIVMSG event received by the
// event loop to the reply line queued for the sender.
func BenchmarkAnswer(b *testing.B) {
	st := newMemStore()
	st.put("foo", "bar")
	cfg := DefaultConfig()
	cfg.Nick, cfg.Servers, cfg.BotChannel, cfg.Store = "alpha", []string{"x:1"}, "#bots", st
	bot, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ls := bot.newLoopState()
	ls.connected, ls.sess = true, 1
	bot.connMu.Lock()
	bot.sessID = 1
	bot.connMu.Unlock()
	ls.view = view("alpha", "alpha", peer("alpha", 1), peer("beta", 2))
	ls.pres.selfJoined("#chan", "alpha")
	ls.pres.join("#chan", "alice")
	now := time.Now()
	ls.fx.now = func() time.Time { now = now.Add(time.Minute); return now } // defeat the repeat filter
	ev := ircEvent{sess: 1, ev: girc.Event{
		Source:  &girc.Source{Name: "alice", Ident: "a", Host: "h"},
		Command: girc.PRIVMSG, Params: []string{"#chan", "!foo"},
	}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bot.lastTick.Store(bot.mono(time.Now()))
		ls.handleIRC(ev)
		select {
		case <-bot.msgQ:
		default:
			b.Fatal("no reply queued")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	texts := []string{"!foo", "ubotu: foo > bob", "!tell bob about foo", "!foo is bar", "!foo =~ s/a/b/", "hello world, nothing for the bot"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Parse(texts[i%len(texts)], chanCtx)
	}
}
