// Command meshctl is the operator CLI of meshbot. It talks to one node's
// control API (a Unix socket, or TCP with a bearer token) and prints tables
// for people and JSON (-o json) for scripts. The work is done by package
// cli; main only maps its error to an exit code.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshbot/meshbot/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshctl:", err)
	}
	os.Exit(cli.ExitCode(err))
}
