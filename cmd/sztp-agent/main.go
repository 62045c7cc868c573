// Command sztp-agent is the device side of Secure Zero Touch Provisioning
// (RFC 8572). All logic lives in internal/cli and agent; main only wires the
// process to them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sztp-agent/sztp-agent/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
