// Command kiln is the Kiln FHIR R4 server and its admin tools, in one
// binary.
//
//	kiln serve [flags]     run the server
//	kiln import FILE|DIR…  load Bundles and NDJSON into the store
//	kiln client add …      register a SMART app
//	kiln user add …        create a local account
//	kiln launch …          create an EHR launch context
//	kiln keys rotate …     new id_token signing key
//	kiln export [flags]    bulk-export from a FHIR server into NDJSON files
//	kiln reindex [flags]   rebuild the search index entries
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
	case "import":
		return importFiles(ctx, args[1:], os.Stdout, os.Stderr)
	case "client":
		return clientCmd(ctx, args[1:], os.Stdout)
	case "user":
		return userCmd(ctx, args[1:], os.Stdin, os.Stdout)
	case "launch":
		return launchCmd(ctx, args[1:], os.Stdout)
	case "keys":
		return keysCmd(ctx, args[1:], os.Stdout)
	case "export":
		return exportCmd(ctx, args[1:])
	case "reindex":
		return reindexCmd(ctx, args[1:], os.Stdout, os.Stderr)
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
  kiln import FILE|DIR…  load Bundles and NDJSON into the store (kiln import -h)
  kiln client add --data DIR --name NAME --redirect-uri URI [--public] [--jwks FILE|--jwks-url URL] [--scope SCOPES]
                       register a SMART app; prints client_id (and client_secret)
  kiln client apply --data DIR --file CLIENTS.json
                       register the clients of a declarative file (fixed ids; replaces)
  kiln user add --data DIR --username U --password-stdin|--oidc-issuer ISS --oidc-subject SUB [--fhir-user Patient/123]
                       create a local account
  kiln launch --data DIR --patient ID [--encounter ID]
                       create an EHR launch context; prints the launch handle
  kiln keys rotate --data DIR
                       new id_token signing key (the old one stays published)
                       (import, client, user, launch, keys: --mongo-uri URI [--mongo-db NAME]
                       instead of --data for a server on MongoDB)
  kiln export --url BASE --out DIR [--type T,…] [--since INSTANT] [--group ID]
                       bulk-export from a FHIR server into NDJSON files
  kiln reindex --data DIR|--mongo-uri URI [--type T]… [--restart] [--quiet]
                       rebuild the search index entries of every current
                       resource (or of the types named) from the registry,
                       custom SearchParameters included; resumes when interrupted
  kiln version         print the version
`)
}
