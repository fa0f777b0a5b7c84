#!/usr/bin/env bash
# meshbot local demo: an IRC server (ngircd) and a 3-node encrypted mesh on
# loopback. Runs until Ctrl-C, then stops everything and removes its files.
#
#   make demo                  # build, start, print how to connect
#   DEMO_EXIT=1 make demo      # start, check that a bot answers, stop (used by tests)
#
# Ports: IRC 127.0.0.1:${DEMO_IRC_PORT:-16667}, gossip 127.0.0.1:17946-17948.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
IRC_PORT=${DEMO_IRC_PORT:-16667}
GOSSIP_BASE=${DEMO_GOSSIP_BASE:-17946}
CHANNEL="#meshbot"
BOTCHAN="#meshbot-bots"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshbot-demo.XXXXXX")
chmod 755 "$WORK"
PIDS=()

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  trap - INT TERM EXIT
  say "stopping the demo"
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup INT TERM EXIT

NGIRCD=$(command -v ngircd || true)
[ -z "$NGIRCD" ] && [ -x /usr/sbin/ngircd ] && NGIRCD=/usr/sbin/ngircd
if [ -z "$NGIRCD" ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing ngircd (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngircd >/dev/null
    NGIRCD=/usr/sbin/ngircd
  else
    echo "The demo needs a local IRC server. Install it with:" >&2
    echo "  sudo apt-get install -y ngircd" >&2
    exit 1
  fi
fi

say "starting ngircd on 127.0.0.1:$IRC_PORT"
cat > "$WORK/ngircd.conf" <<CONF
[Global]
	Name = irc.meshbot.test
	Info = meshbot demo server
	Listen = 127.0.0.1
	Ports = $IRC_PORT
	MotdPhrase = meshbot demo
	PidFile = $WORK/ngircd.pid
[Limits]
	MaxConnectionsIP = 0
	MaxNickLength = 30
	PingTimeout = 120
	PongTimeout = 20
[Options]
	PAM = no
	Ident = no
	DNS = no
	MaxPenaltyTime = 0
CONF
chmod 644 "$WORK/ngircd.conf"
"$NGIRCD" -n -f "$WORK/ngircd.conf" >"$WORK/ngircd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$IRC_PORT) 2>/dev/null && break; sleep 0.1; done

say "starting 3 meshbot nodes (gossip encrypted, profile fast)"
"$BIN/meshbot" keygen > "$WORK/gossip.key"
chmod 600 "$WORK/gossip.key"
for i in 1 2 3; do
  port=$((GOSSIP_BASE + i - 1))
  mkdir -p "$WORK/node$i"
  cat > "$WORK/node$i.yaml" <<YAML
name: node$i
rank: $i
data_dir: $WORK/node$i
mesh:
  bind: 127.0.0.1:$port
  join: [127.0.0.1:$GOSSIP_BASE, 127.0.0.1:$((GOSSIP_BASE + 1))]
  key_file: $WORK/gossip.key
  profile: fast
  preempt_delay: 10s
irc:
  servers: [127.0.0.1:$IRC_PORT]
  nick: meshbot$i
  bot_channel: "$BOTCHAN"
  channels: ["$CHANNEL"]
  ping_interval: 2s
editors: ["*!*@127.0.0.1", "*!*@localhost"]
log:
  level: info
YAML
  "$BIN/meshbot" run -config "$WORK/node$i.yaml" >"$WORK/node$i.log" 2>&1 &
  PIDS+=($!)
done

ctl() { "$BIN/meshctl" -socket "$WORK/node1/meshbot.sock" "$@"; }
for _ in $(seq 1 100); do
  n=$(ctl members -status alive -o json 2>/dev/null | grep -c '"name"' || true)
  [ "$n" = 3 ] && break
  sleep 0.2
done

say "seeding factoids"
ctl factoid set meshbot "a mesh of IRC factoid bots: exactly one answers, whoever is alive" >/dev/null
ctl factoid set ubotu "<reply>ubotu is the Ubuntu factoid bot that meshbot's failover design comes from" >/dev/null
ctl factoid set failover "kill the active bot (meshctl members shows which) and ask again: the next one answers" >/dev/null

# ask_bot connects to the IRC server, asks !meshbot in the channel and
# prints the first answer (bash /dev/tcp; no IRC client needed).
ask_bot() {
  local deadline=$((SECONDS + 40)) line joined=0 last_ask=0
  exec 3<>/dev/tcp/127.0.0.1/$IRC_PORT
  printf 'NICK demouser\r\nUSER demo 0 * :demo\r\n' >&3
  while [ $SECONDS -lt $deadline ]; do
    if IFS= read -r -t 1 line <&3; then
      line=${line%$'\r'}
      case "$line" in
        PING*) printf 'PONG %s\r\n' "${line#PING }" >&3 ;;
        *" 001 "*) printf 'JOIN %s\r\n' "$CHANNEL" >&3 ;;
        *" 366 "*) joined=1 ;;
        *"PRIVMSG $CHANNEL :meshbot"*)
          echo "${line#:}"; printf 'QUIT\r\n' >&3; exec 3>&-; return 0 ;;
      esac
    fi
    # ask every 3 s until the active bot has joined the channel and answers
    if [ $joined = 1 ] && [ $((SECONDS - last_ask)) -ge 3 ]; then
      printf 'PRIVMSG %s :!meshbot\r\n' "$CHANNEL" >&3
      last_ask=$SECONDS
    fi
  done
  exec 3>&-
  return 1
}

say "asking !meshbot in $CHANNEL"
if answer=$(ask_bot); then
  echo "   $answer"
else
  echo "no bot answered in 40 s; logs are in $WORK" >&2
  tail -n 20 "$WORK"/node*.log >&2
  [ -n "${DEMO_EXIT:-}" ] && exit 1
fi

say "meshctl members"
ctl members
echo
cat <<TXT
The mesh is up. Try it:
  * connect any IRC client to 127.0.0.1 port $IRC_PORT, join $CHANNEL and say: !meshbot
  * export MESHCTL_SOCKET=$WORK/node1/meshbot.sock
    $BIN/meshctl members -watch        # in another terminal
    $BIN/meshctl factoid set hello "hello, world"
  * kill the active bot and watch the next one take over:
    kill -9 \$(pgrep -f 'node1.yaml')
Logs: $WORK/node*.log. Press Ctrl-C to stop and clean up.
TXT

[ -n "${DEMO_EXIT:-}" ] && exit 0
wait
