// Command kiln is the Kiln FHIR R4 server and its admin tools, in one
// binary.
//
//	kiln serve [flags]     run the server
//	kiln export [flags]    bulk-export from a FHIR server into NDJSON files
//	kiln version           print the version
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kiln:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		usage()
		return fmt.Errorf("missing command")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "export":
		return exportCmd(ctx, args[1:])
	case "version", "--version", "-version":
		fmt.Println("kiln", version)
		return nil
	case "help", "-h", "--help":
		usage()
		return nil
	}
	usage()
	return fmt.Errorf("unknown command %q", args[0])
}

func usage() {
	fmt.Fprint(os.Stderr, `Kiln, a FHIR R4 server.

Usage:
  kiln serve [flags]   run the server (kiln serve -h lists the flags)
  kiln export --url BASE --out DIR [--type T,…] [--since INSTANT] [--group ID]
                       bulk-export from a FHIR server into NDJSON files
  kiln version         print the version
`)
}
