package bot_test

import (
	"fmt"

	"github.com/meshbot/meshbot/bot"
)

func ExampleDecide() {
	order := []bot.Peer{
		{Name: "ubotu", Nick: "ubotu", Rank: 1},
		{Name: "ubotu2", Nick: "ubotu2", Rank: 2, Alive: true, Healthy: true},
	}
	// Gossip says ubotu2 is active, but ubotu is still visible in #ubuntu.
	v := bot.View{Self: "ubotu2", Active: "ubotu2", Order: order}
	d := bot.Decide(bot.DecideInput{
		View:     v,
		SelfNick: "ubotu2",
		Present:  func(nick string) bool { return nick == "ubotu" || nick == "ubotu2" },
	})
	fmt.Println(d.Action, d.Hedge)
	// Once ubotu has quit, ubotu2 answers at once.
	d = bot.Decide(bot.DecideInput{View: v, SelfNick: "ubotu2", Present: func(n string) bool { return n == "ubotu2" }})
	fmt.Println(d.Action, d.Hedge)
	// Output:
	// hedge [ubotu]
	// answer []
}

func ExampleParse() {
	ctx := bot.ParseContext{BotNick: "ubotu", Prefix: "!", Sender: "alice", Channel: "#ubuntu"}
	for _, text := range []string{"!sudo > bob", "ubotu: sudo | bob", "!no, sudo is <reply> use sudo", "hello"} {
		cmd, ok := bot.Parse(text, ctx)
		fmt.Printf("%v %v %q %q %q\n", ok, cmd.Kind, cmd.Name, cmd.Target, cmd.RetMsg)
	}
	// Output:
	// true lookup "sudo" "bob" "alice wants you to know: "
	// true lookup "sudo" "#ubuntu" "bob: "
	// true replace "sudo" "#ubuntu" ""
	// false kind(0) "" "" ""
}

func ExampleSanitizeText() {
	fmt.Printf("%q\n", bot.SanitizeText("hi\r\nQUIT :bye\x00", 0))
	fmt.Printf("%q\n", bot.SanitizeText("héllo", 2))
	// Output:
	// "hi  QUIT :bye "
	// "h"
}
