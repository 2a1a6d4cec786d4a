package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/smart"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// The admin commands open the store directly, beside running servers if
// need be: the SQLite file (every record they write is one statement,
// which SQLite serialises with the server's writes) or, with --mongo-uri,
// the MongoDB database the servers share (records are written with the
// same atomic operations the servers use).

// listFlag collects a flag given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// recordStore is what the admin commands write to.
type recordStore interface {
	store.Records
	Close() error
}

// storeFlags are the flags that say which store an admin command opens.
type storeFlags struct{ data, mongoURI, mongoDB *string }

func addStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		data:     fs.String("data", env("KILN_DATA", "./data"), "data directory (KILN_DATA)"),
		mongoURI: fs.String("mongo-uri", env("KILN_MONGO_URI", ""), "MongoDB connection string of the servers' store, instead of --data (KILN_MONGO_URI)"),
		mongoDB:  fs.String("mongo-db", env("KILN_MONGO_DB", ""), "MongoDB database name; default the URI's, else kiln (KILN_MONGO_DB)"),
	}
}

// open opens the store for a command that reads and writes records only:
// beside a live server on the embedded store (no data-directory lock).
func (f storeFlags) open(ctx context.Context) (recordStore, error) {
	return f.openWith(ctx, sqlite.Config{RecordsOnly: true})
}

// openWith opens MongoDB with --mongo-uri, else the embedded store of
// --data with cfg (its Path filled in).
func (f storeFlags) openWith(ctx context.Context, cfg sqlite.Config) (reindexStore, error) {
	if *f.mongoURI != "" {
		// Startup notes go to stderr at warn level: stdout is the answer.
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		st, err := mongo.Open(ctx, *f.mongoURI, mongo.Options{Database: *f.mongoDB, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("mongodb: %w", err)
		}
		return st, nil
	}
	if *f.mongoDB != "" {
		return nil, errors.New("--mongo-db needs --mongo-uri")
	}
	if _, err := os.Stat(*f.data); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	cfg.Path = filepath.Join(*f.data, "kiln.db")
	st, err := sqlite.Open(ctx, cfg)
	if err != nil {
		// A nil *sqlite.Store must not become a non-nil interface.
		return nil, err
	}
	return st, nil
}

// clientCmd is `kiln client add`: it registers a SMART app and prints
// its client_id (and, for a symmetric client, the client_secret, which
// is shown only this once) as JSON.
func clientCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "apply" {
		return clientApply(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "token" {
		return clientToken(ctx, args[1:], stdout)
	}
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: kiln client add --data DIR|--mongo-uri URI --name NAME --redirect-uri URI [--public] [--jwks FILE|--jwks-url URL] [--scope SCOPES]\n       kiln client apply --data DIR|--mongo-uri URI --file CLIENTS.json\n       kiln client token --data DIR|--mongo-uri URI [--ttl 24h]")
	}
	fs := flag.NewFlagSet("kiln client add", flag.ContinueOnError)
	data := addStoreFlags(fs)
	name := fs.String("name", "", "the app's name, shown on the consent page")
	var redirects listFlag
	fs.Var(&redirects, "redirect-uri", "a redirect URI, matched exactly (repeat for several)")
	public := fs.Bool("public", false, "a public client (no secret: browser and native apps with PKCE)")
	jwksFile := fs.String("jwks", "", "file with the client's public JWK Set (private_key_jwt)")
	jwksURL := fs.String("jwks-url", "", "URL of the client's public JWK Set (private_key_jwt)")
	scope := fs.String("scope", "", "space-separated scopes the client may be granted (default: all app scopes, or system/*.rs for a backend service)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	spec := smart.ClientSpec{Name: *name, RedirectURIs: redirects, Public: *public, JWKSURL: *jwksURL, Scopes: strings.Fields(*scope)}
	if *jwksFile != "" {
		b, err := os.ReadFile(*jwksFile)
		if err != nil {
			return err
		}
		spec.JWKS = b
	}
	st, err := data.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := smart.AddClient(ctx, st, spec)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(reg)
}

// clientToken is `kiln client token`: an initial access token for one
// dynamic registration (RFC 7591 §3, POST B/auth/register), printed as
// JSON with its expiry. Only its hash is stored.
func clientToken(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kiln client token", flag.ContinueOnError)
	data := addStoreFlags(fs)
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token may be used (once)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := data.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, exp, err := smart.CreateRegistrationToken(ctx, st, *ttl)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]string{"initial_access_token": tok, "expires_at": exp.Format(time.RFC3339)})
}

// clientApply is `kiln client apply`: a declarative JSON file of clients
// with fixed ids (smart.ApplyClients), applied as a whole or not at all.
func clientApply(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kiln client apply", flag.ContinueOnError)
	data := addStoreFlags(fs)
	file := fs.String("file", "", "JSON array of clients: client_id, client_name, redirect_uris, public, client_secret, jwks, jwks_uri, scope")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	st, err := data.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	regs, err := smart.ApplyClients(ctx, st, b)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"clients": regs})
}

// userCmd is `kiln user add`: a local account, its password read from
// the first line of standard input (never a flag, which ps would show).
func userCmd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: kiln user add --data DIR|--mongo-uri URI --username U --password-stdin|--oidc-issuer ISS --oidc-subject SUB [--fhir-user Patient/123|Practitioner/456]")
	}
	fs := flag.NewFlagSet("kiln user add", flag.ContinueOnError)
	data := addStoreFlags(fs)
	username := fs.String("username", "", "the login name")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (required)")
	fhirUser := fs.String("fhir-user", "", "the person resource of this user: Patient/ID, Practitioner/ID, RelatedPerson/ID or Person/ID")
	issuer := fs.String("oidc-issuer", "", "with --oidc-subject: the upstream OpenID provider this user signs in with")
	subject := fs.String("oidc-subject", "", "the user's subject (sub) at --oidc-issuer")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if (*issuer == "") != (*subject == "") {
		return errors.New("--oidc-issuer and --oidc-subject go together")
	}
	if !*pwStdin && *subject == "" {
		return errors.New("--password-stdin is required (the password is read from standard input), unless the user signs in upstream (--oidc-issuer, --oidc-subject)")
	}
	var password string
	if *pwStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if password = strings.TrimRight(line, "\r\n"); password == "" {
			return errors.New("the password on standard input is empty")
		}
	}
	st, err := data.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := smart.AddUser(ctx, st, *username, password, *fhirUser)
	if err != nil {
		return err
	}
	if *subject != "" {
		if err := smart.LinkUser(ctx, st, u.Username, *issuer, *subject); err != nil {
			return err
		}
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"username": u.Username, "sub": u.Subject, "fhirUser": u.FHIRUser})
}

// launchCmd is `kiln launch`: an EHR launch context for testing apps,
// printed as the launch handle to pass with iss to the app's launch URL.
func launchCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kiln launch", flag.ContinueOnError)
	data := addStoreFlags(fs)
	patient := fs.String("patient", "", "patient id of the launch context")
	encounter := fs.String("encounter", "", "encounter id of the launch context")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := data.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	id, err := smart.CreateLaunch(ctx, st, *patient, *encounter)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"launch": id})
}

// keysCmd is `kiln keys rotate`: a new id_token signing key.
func keysCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("usage: kiln keys rotate --data DIR|--mongo-uri URI")
	}
	fs := flag.NewFlagSet("kiln keys rotate", flag.ContinueOnError)
	data := addStoreFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	st, err := data.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	kid, err := smart.RotateKeys(ctx, st)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"kid": kid})
}
