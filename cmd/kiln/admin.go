package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-fhir/kiln/smart"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// The admin commands open the SQLite file directly, beside a running
// server if need be: every record they write is one statement, which
// SQLite serialises with the server's writes.

// listFlag collects a flag given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func openData(ctx context.Context, data string) (*sqlite.Store, error) {
	if _, err := os.Stat(data); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(data, "kiln.db"), RecordsOnly: true})
}

// clientCmd is `kiln client add`: it registers a SMART app and prints
// its client_id (and, for a symmetric client, the client_secret, which
// is shown only this once) as JSON.
func clientCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "apply" {
		return clientApply(ctx, args[1:], stdout)
	}
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: kiln client add --data DIR --name NAME --redirect-uri URI [--public] [--jwks FILE|--jwks-url URL] [--scope SCOPES]\n       kiln client apply --data DIR --file CLIENTS.json")
	}
	fs := flag.NewFlagSet("kiln client add", flag.ContinueOnError)
	data := fs.String("data", env("KILN_DATA", "./data"), "data directory (KILN_DATA)")
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
	st, err := openData(ctx, *data)
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

// clientApply is `kiln client apply`: a declarative JSON file of clients
// with fixed ids (smart.ApplyClients), applied as a whole or not at all.
func clientApply(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kiln client apply", flag.ContinueOnError)
	data := fs.String("data", env("KILN_DATA", "./data"), "data directory (KILN_DATA)")
	file := fs.String("file", "", "JSON array of clients: client_id, client_name, redirect_uris, public, client_secret, jwks, jwks_uri, scope")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	st, err := openData(ctx, *data)
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
		return errors.New("usage: kiln user add --data DIR --username U --password-stdin|--oidc-issuer ISS --oidc-subject SUB [--fhir-user Patient/123|Practitioner/456]")
	}
	fs := flag.NewFlagSet("kiln user add", flag.ContinueOnError)
	data := fs.String("data", env("KILN_DATA", "./data"), "data directory (KILN_DATA)")
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
	st, err := openData(ctx, *data)
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
	data := fs.String("data", env("KILN_DATA", "./data"), "data directory (KILN_DATA)")
	patient := fs.String("patient", "", "patient id of the launch context")
	encounter := fs.String("encounter", "", "encounter id of the launch context")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := openData(ctx, *data)
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
		return errors.New("usage: kiln keys rotate --data DIR")
	}
	fs := flag.NewFlagSet("kiln keys rotate", flag.ContinueOnError)
	data := fs.String("data", env("KILN_DATA", "./data"), "data directory (KILN_DATA)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	st, err := openData(ctx, *data)
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
