package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshbot/meshbot/e2e/irctest"
)

// observer is a minimal raw IRC client: it answers PING, joins one channel,
// asks questions there and records every factoid answer with its receive
// time. Its reader goroutine stops on Close.
type observer struct {
	nick    string
	channel string
	conn    net.Conn
	tr      io.Writer // transcript: questions, answers, JOIN/PART/QUIT, marks

	wmu sync.Mutex

	mu      sync.Mutex
	answers []answer
	names   []string      // NAMES being collected
	namesCh chan []string // waiter for RPL_ENDOFNAMES, nil if none
	joined  chan struct{}
	welcome chan struct{}
	done    chan struct{}
}

// dialObserver connects, registers and joins channel.
func dialObserver(server, nick, channel string, transcript io.Writer) (*observer, error) {
	conn, err := net.DialTimeout("tcp", server, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("observer connect %s: %w", server, err)
	}
	o := &observer{nick: nick, channel: channel, conn: conn, tr: transcript,
		joined: make(chan struct{}), welcome: make(chan struct{}), done: make(chan struct{})}
	go o.read()
	o.send("NICK " + nick)
	o.send("USER " + nick + " 0 * :ircbench observer")
	for _, step := range []struct {
		what string
		ch   chan struct{}
		line string
	}{{"welcome", o.welcome, ""}, {"join " + channel, o.joined, "JOIN " + channel}} {
		if step.line != "" {
			o.send(step.line)
		}
		select {
		case <-step.ch:
		case <-o.done:
			o.Close()
			return nil, fmt.Errorf("observer: connection closed before %s", step.what)
		case <-time.After(15 * time.Second):
			o.Close()
			return nil, fmt.Errorf("observer: no %s within 15s", step.what)
		}
	}
	return o, nil
}

// Close disconnects and waits for the reader.
func (o *observer) Close() {
	o.send("QUIT :bye")
	o.conn.Close()
	<-o.done
}

// send writes one line; safe from any goroutine.
func (o *observer) send(line string) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	o.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(o.conn, "%s\r\n", line)
}

// ask sends "!name" to the channel and returns when it was sent.
func (o *observer) ask(name string) question {
	q := question{Name: name, At: time.Now()}
	o.send("PRIVMSG " + o.channel + " :!" + name)
	o.mark(q.At, "ASK !"+name)
	return q
}

// mark writes one transcript line.
func (o *observer) mark(at time.Time, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.markLocked(at, text)
}

func (o *observer) markLocked(at time.Time, text string) {
	fmt.Fprintf(o.tr, "%s %s\n", at.UTC().Format("15:04:05.000"), text)
}

func (o *observer) read() {
	defer close(o.done)
	r := bufio.NewReaderSize(o.conn, 4096)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		at := time.Now()
		nick, cmd, params := irctest.ParseLine(strings.TrimRight(line, "\r\n"))
		o.mu.Lock()
		switch cmd {
		case "PING":
			o.mu.Unlock()
			o.send("PONG :" + strings.Join(params, " "))
			continue
		case "001":
			closeOnce(o.welcome)
		case "JOIN", "PART", "QUIT":
			if cmd == "JOIN" && strings.EqualFold(nick, o.nick) {
				closeOnce(o.joined)
			}
			o.markLocked(at, cmd+" "+nick+" "+strings.Join(params, " "))
		case "PRIVMSG":
			if len(params) == 2 && strings.EqualFold(params[0], o.channel) {
				o.markLocked(at, "<"+nick+"> "+params[1])
				if name, ok := parseAnswer(params[1]); ok {
					o.answers = append(o.answers, answer{At: at, From: nick, Name: name})
				}
			}
		case "353": // RPL_NAMREPLY: me = channel :names
			for _, n := range strings.Fields(params[len(params)-1]) {
				o.names = append(o.names, strings.TrimLeft(n, "@+%&~"))
			}
		case "366": // RPL_ENDOFNAMES
			if o.namesCh != nil {
				o.namesCh <- o.names
				o.namesCh = nil
			}
			o.names = nil
		}
		o.mu.Unlock()
	}
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// namesOf returns the nicks in the channel other than the observer, sorted.
func (o *observer) channelBots() ([]string, error) {
	w := make(chan []string, 1)
	o.mu.Lock()
	if o.namesCh != nil {
		o.mu.Unlock()
		return nil, fmt.Errorf("NAMES already pending")
	}
	o.namesCh, o.names = w, nil
	o.mu.Unlock()
	o.send("NAMES " + o.channel)
	select {
	case ns := <-w:
		ns = slices.DeleteFunc(ns, func(n string) bool { return strings.EqualFold(n, o.nick) })
		slices.Sort(ns)
		return ns, nil
	case <-o.done:
		return nil, fmt.Errorf("observer disconnected")
	case <-time.After(10 * time.Second):
		o.mu.Lock()
		o.namesCh = nil
		o.mu.Unlock()
		return nil, fmt.Errorf("no NAMES reply for %s", o.channel)
	}
}

// answersSince returns the answers received at or after t.
func (o *observer) answersSince(t time.Time) []answer {
	o.mu.Lock()
	defer o.mu.Unlock()
	i, _ := slices.BinarySearchFunc(o.answers, t, func(a answer, t time.Time) int { return a.At.Compare(t) })
	return slices.Clone(o.answers[i:])
}

// asker asks a new question every interval until Stop.
type asker struct {
	mu    sync.Mutex
	asked []question
	stop  chan struct{}
	done  chan struct{}
}

func startAsker(o *observer, interval time.Duration, next func() string) *asker {
	a := &asker{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			q := o.ask(next())
			a.mu.Lock()
			a.asked = append(a.asked, q)
			a.mu.Unlock()
			select {
			case <-a.stop:
				return
			case <-t.C:
			}
		}
	}()
	return a
}

// Stop stops asking and returns every question asked.
func (a *asker) Stop() []question {
	closeOnce(a.stop)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}
