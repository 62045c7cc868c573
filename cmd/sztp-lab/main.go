// Command sztp-lab runs a throw-away RFC 8572 bootstrap server for testing
// the SZTP agent: it creates (or reuses) a lab PKI, serves the bootstrapping
// data of a definition file and prints every progress report it receives.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sztp-agent/sztp-agent/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := lab.RunCLI(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "sztp-lab:", err)
		stop()
		os.Exit(1)
	}
}
