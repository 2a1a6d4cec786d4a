package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kiln-fhir/kiln/fhir/audit"
	"github.com/kiln-fhir/kiln/fhir/bulk"
	"github.com/kiln-fhir/kiln/fhir/reindex"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/smart"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/metered"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// serveConfig is what `kiln serve` reads from flags and the environment.
type serveConfig struct {
	addr      string
	data      string
	baseURL   string
	maxBody   int64
	auth      string
	logLevel  string
	logFormat string
	// searchHandling is the default for unknown search parameters when a
	// request does not say Prefer: handling=… (search.html#errors).
	searchHandling string
	// Upstream OpenID Connect sign-in (--auth=smart only).
	oidcIssuer, oidcClientID, oidcClientSecret string
	// cache bounds the embedded store's read cache in bytes; 0 turns it
	// off (and with it the exclusive lock on the data directory).
	cache int64
	// Bulk export (fhir/bulk).
	exportWorkers  int
	exportMaxJobs  int
	exportFileSize int64
	exportExpiry   time.Duration
	exportLease    time.Duration
	exportMinPoll  time.Duration
	// mongoURI selects the MongoDB backend instead of the embedded store;
	// mongoDB names its database (default: the URI's, else "kiln").
	mongoURI     string
	mongoDB      string
	mongoTimeout time.Duration
	// tlsCert and tlsKey, both set, serve HTTPS (TLS 1.2 or later).
	tlsCert, tlsKey string
	// SMART token lifetimes (--auth=smart): access tokens, refresh
	// tokens and authorization codes.
	accessTTL, refreshTTL, codeTTL time.Duration
}

// defaultCache is the read cache's default size: some 20,000 Synthea
// Patients.
const defaultCache = 64 << 20

// flags registers every flag with its KILN_* environment variable as the
// default, so that flags win over the environment.
func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", env("KILN_ADDR", ":8080"), "listen address (KILN_ADDR)")
	fs.StringVar(&c.data, "data", env("KILN_DATA", "./data"), "data directory of the embedded store (KILN_DATA)")
	fs.StringVar(&c.baseURL, "base-url", env("KILN_BASE_URL", ""), "public base URL for Location headers and links; empty derives it from each request (KILN_BASE_URL)")
	fs.Int64Var(&c.maxBody, "max-body", 16<<20, "largest request body in bytes; larger gets 413 (KILN_MAX_BODY)")
	fs.Int64Var(&c.cache, "cache", defaultCache, "read cache of current versions in bytes; 0 disables it. With a cache the server locks DATA/kiln.db.lock: no other process may open the store (KILN_CACHE)")
	fs.StringVar(&c.auth, "auth", env("KILN_AUTH", "smart"), "authorization: smart (Kiln's own SMART on FHIR authorization server) or none (no authorization at all; development only) (KILN_AUTH)")
	fs.StringVar(&c.oidcIssuer, "oidc-issuer", env("KILN_OIDC_ISSUER", ""), "upstream OpenID Connect provider offered on the login page, e.g. https://login.example.org (KILN_OIDC_ISSUER)")
	fs.StringVar(&c.oidcClientID, "oidc-client-id", env("KILN_OIDC_CLIENT_ID", ""), "Kiln's client id at the upstream provider (KILN_OIDC_CLIENT_ID)")
	fs.StringVar(&c.oidcClientSecret, "oidc-client-secret", env("KILN_OIDC_CLIENT_SECRET", ""), "Kiln's client secret at the upstream provider (KILN_OIDC_CLIENT_SECRET)")
	fs.StringVar(&c.tlsCert, "tls-cert", env("KILN_TLS_CERT", ""), "PEM certificate chain; with --tls-key the server speaks HTTPS only, TLS 1.2 or later (KILN_TLS_CERT)")
	fs.StringVar(&c.tlsKey, "tls-key", env("KILN_TLS_KEY", ""), "PEM private key of --tls-cert (KILN_TLS_KEY)")
	fs.StringVar(&c.logLevel, "log-level", env("KILN_LOG_LEVEL", "info"), "debug, info, warn or error (KILN_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", env("KILN_LOG_FORMAT", "text"), "text or json (KILN_LOG_FORMAT)")
	fs.StringVar(&c.mongoURI, "mongo-uri", env("KILN_MONGO_URI", ""), "MongoDB connection string; when set, resources live in MongoDB instead of the embedded store (KILN_MONGO_URI)")
	fs.StringVar(&c.mongoDB, "mongo-db", env("KILN_MONGO_DB", ""), "MongoDB database name; default the URI's, else kiln (KILN_MONGO_DB)")
	fs.DurationVar(&c.mongoTimeout, "mongo-timeout", 5*time.Second, "bound on connecting to MongoDB and on each operation; past it a request answers 503 (KILN_MONGO_TIMEOUT)")
	fs.StringVar(&c.searchHandling, "search-handling", env("KILN_SEARCH_HANDLING", "lenient"), "unknown search parameters: lenient (ignored and reported) or strict (400) (KILN_SEARCH_HANDLING)")
	fs.IntVar(&c.exportWorkers, "export-workers", 2, "bulk exports this process runs at once (KILN_EXPORT_WORKERS)")
	fs.IntVar(&c.exportMaxJobs, "export-max-jobs", 4, "bulk exports queued or running at once; more get 429 (KILN_EXPORT_MAX_JOBS)")
	fs.Int64Var(&c.exportFileSize, "export-file-size", 128<<20, "bytes after which an export file is split (KILN_EXPORT_FILE_SIZE)")
	fs.DurationVar(&c.exportExpiry, "export-expiry", time.Hour, "how long a finished export's files are kept (KILN_EXPORT_EXPIRY)")
	// Defaults as smart.Config's: an hour for access tokens
	// (app-launch.html: "should not exceed one hour"), 90 days for
	// refresh tokens, a minute for codes (app-launch.html: "short-lived,
	// usually around one minute").
	fs.DurationVar(&c.accessTTL, "access-token-ttl", time.Hour, "lifetime of SMART access tokens and id_tokens (KILN_ACCESS_TOKEN_TTL)")
	fs.DurationVar(&c.refreshTTL, "refresh-token-ttl", 90*24*time.Hour, "lifetime of SMART refresh tokens; each refresh issues a new one (KILN_REFRESH_TOKEN_TTL)")
	fs.DurationVar(&c.codeTTL, "auth-code-ttl", time.Minute, "lifetime of SMART authorization codes (KILN_AUTH_CODE_TTL)")
	fs.DurationVar(&c.exportMinPoll, "export-min-poll", 50*time.Millisecond, "least time between two status polls of a running export; a poll sooner gets 429 with Retry-After; 0 turns the check off (KILN_EXPORT_MIN_POLL)")
	fs.DurationVar(&c.exportLease, "export-lease", 30*time.Second, "how long a process holds a running export without renewing it; when a process dies another takes the export over after this (KILN_EXPORT_LEASE)")
}

func serve(ctx context.Context, args []string) (err error) {
	var cfg serveConfig
	fs := flag.NewFlagSet("kiln serve", flag.ContinueOnError)
	cfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.numbersFromEnv(fs); err != nil {
		return err
	}
	logger, err := newLogger(cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	if cfg.searchHandling != "lenient" && cfg.searchHandling != "strict" {
		return fmt.Errorf("--search-handling must be lenient or strict, not %q", cfg.searchHandling)
	}
	switch cfg.auth {
	case "none":
		logger.Warn("authorization is OFF (--auth=none): every client can read and write every resource")
	case "smart":
	default:
		return fmt.Errorf("--auth must be smart or none, not %q", cfg.auth)
	}
	if (cfg.tlsCert != "") != (cfg.tlsKey != "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	var tlsConfig *tls.Config
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		// TLS 1.2 is the floor (issue 5; SMART App Launch: TLS 1.2 or
		// later; RFC 8996 deprecates 1.0 and 1.1).
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	if (cfg.oidcIssuer != "") != (cfg.oidcClientID != "") {
		return errors.New("--oidc-issuer and --oidc-client-id go together")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	db, backend, where, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	// Closed last, after the HTTP server and the export workers stopped
	// (it flushes the last commit).
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing store: %w", cerr)
		}
	}()
	st := metered.Wrap(db, backend, reg)
	if cached, ok := db.(cacheStats); ok {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "kiln_store_cache_hits_total", Help: "Reads of current versions answered by the read cache.",
			}, func() float64 { hits, _ := cached.CacheStats(); return float64(hits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "kiln_store_cache_misses_total", Help: "Reads of current versions the read cache did not hold (0 with --cache 0).",
			}, func() float64 { _, misses := cached.CacheStats(); return float64(misses) }),
		)
	}

	// Listen first: the SMART audience needs the port when --addr says :0.
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	restCfg := rest.Config{
		BaseURL:      cfg.baseURL,
		MaxBody:      cfg.maxBody,
		Logger:       logger,
		Metrics:      rest.NewMetrics(reg),
		Version:      version,
		StrictSearch: cfg.searchHandling == "strict",
	}
	var authz *smart.Server
	var auditor *audit.Writer
	if cfg.auth == "smart" {
		records, ok := db.(store.Records)
		if !ok {
			ln.Close()
			return fmt.Errorf("the %s store cannot keep SMART authorization records: use --auth=none", backend)
		}
		if authz, err = newSMART(ctx, cfg, ln.Addr(), records, logger); err != nil {
			ln.Close()
			return err
		}
		e := authz.Endpoints()
		restCfg.Auth = smartAuthorizer{authz}
		// Every request made with a token becomes an AuditEvent, written
		// in batches off the request path. Closed (flushing what is
		// queued) after the HTTP server stopped and before the store
		// closes: defers run last first.
		// Bulk export reports to the same writer.
		auditor = audit.New(audit.Config{Logger: logger, Metrics: reg}, st)
		defer auditor.Close()
		restCfg.Audit = auditor
		restCfg.OAuth = &rest.OAuthURIs{Authorize: e.Authorize, Token: e.Token, Introspect: e.Introspect, Revoke: e.Revoke}
	}
	// Custom SearchParameters (fhir/reindex): loaded now, so that those
	// whose reindex completed are searchable from the first request; their
	// reindex jobs run on this process's worker, or any other's on the
	// same store. Closed after the HTTP server stopped and before the
	// store closes (defers run last first); a job in progress is handed
	// back for the next start to resume.
	if rs, ok := db.(reindex.RegistryStore); ok {
		params, err := reindex.New(ctx, reindex.Config{Logger: logger}, rs)
		if err != nil {
			ln.Close()
			return fmt.Errorf("custom search parameters: %w", err)
		}
		defer params.Close()
		restCfg.SearchParams = params
	}
	// Bulk export is served in front of the REST API (withBulk) when the
	// store keeps its jobs; the CapabilityStatement still lists it.
	exportStore, canExport := db.(bulk.Store)
	if canExport {
		restCfg.ExternalOperations = bulkOperations
		restCfg.Instantiates = []string{bulkCapabilities}
	}
	var handler http.Handler = rest.New(restCfg, st)
	if authz != nil {
		handler = withSMART(handler, authz, smartBase(cfg, ln.Addr()))
	}

	// Bulk export reads and writes the store directly: its scans and
	// chunked files are not REST calls, and are metered by the job. Both
	// backends keep its jobs and files, so with MongoDB any process can
	// run, poll and serve any export.
	if canExport {
		var exportAuth bulk.Authorizer
		var exportAudit bulk.Auditor
		if authz != nil {
			exportAuth = exportAuthorizer{authz}
			exportAudit = auditor
		}
		exports := bulk.New(bulk.Config{
			Authorizer:  exportAuth,
			Audit:       exportAudit,
			BaseURL:     cfg.baseURL,
			Workers:     cfg.exportWorkers,
			MaxJobs:     cfg.exportMaxJobs,
			MaxFileSize: cfg.exportFileSize,
			Expiry:      cfg.exportExpiry,
			Lease:       cfg.exportLease,
			MinPoll:     bulkMinPoll(cfg.exportMinPoll),
			Logger:      logger,
		}, exportStore)
		// Closing hands a running export back, for the next start to
		// resume; it runs before the store closes (defers run last first).
		defer exports.Close()
		handler = withBulk(exports, handler)
	}

	srv := &http.Server{
		Addr:              cfg.addr,
		TLSConfig:         tlsConfig,
		Handler:           withOps(handler, st, reg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("kiln serving", "addr", ln.Addr().String(), "tls", tlsConfig != nil, "data", where, "store", backend, "cache_bytes", cfg.cache, "version", version)

	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Graceful shutdown: stop accepting, let in-flight requests finish,
	// then close the store (which flushes its last commit). A second
	// signal exits at once; the store's WAL keeps every acknowledged write.
	logger.Info("shutting down")
	go func() {
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		logger.Warn("second signal: exiting without waiting for in-flight requests")
		os.Exit(1)
	}()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serr := srv.Shutdown(sctx)
	logger.Info("stopped")
	return serr
}

// Bulk Data IG 2.0 (export.html#server-capability-documentation): a
// server that exports lists $export at each level it serves with the
// IG's OperationDefinitions, and instantiates the IG's CapabilityStatement.
const bulkCapabilities = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"

var bulkOperations = []rest.ExternalOperation{
	{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export", System: true},
	{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export", Types: []string{"Patient"}},
	{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export", Types: []string{"Group"}},
}

// withBulk sends the bulk export requests ($export kick-offs, their status
// and file URLs) to exports and everything else to the REST API.
func withBulk(exports *bulk.Handler, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exports.Match(r) {
			exports.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// cacheStats is a store with a read cache whose figures /metrics shows
// (the embedded store).
type cacheStats interface {
	CacheStats() (hits, misses int64)
}

// Both backends keep everything a server needs: resources, the SMART
// authorization server's records and bulk export's jobs and files.
var (
	_ store.Records = (*sqlite.Store)(nil)
	_ bulk.Store    = (*sqlite.Store)(nil)
	_ cacheStats    = (*sqlite.Store)(nil)
	_ store.Records = (*mongo.Store)(nil)
	_ bulk.Store    = (*mongo.Store)(nil)

	_ reindex.RegistryStore = (*sqlite.Store)(nil)
	_ reindex.RegistryStore = (*mongo.Store)(nil)
)

// openStore opens the backend the configuration selects: MongoDB with
// --mongo-uri, the embedded SQLite store otherwise. What else a backend
// offers (store.Records, bulk.Store, cacheStats) the caller asks of it.
// It says which backend, and where the data is (never the URI: it may
// hold credentials).
func openStore(ctx context.Context, cfg serveConfig, logger *slog.Logger) (st store.Store, backend, where string, err error) {
	if cfg.mongoURI != "" {
		db, err := mongo.Open(ctx, cfg.mongoURI, mongo.Options{Database: cfg.mongoDB, Timeout: cfg.mongoTimeout, Logger: logger})
		if err != nil {
			return nil, "", "", fmt.Errorf("mongodb: %w", err)
		}
		return db, "mongo", "mongodb database " + db.Database(), nil
	}
	if cfg.mongoDB != "" {
		return nil, "", "", errors.New("--mongo-db needs --mongo-uri")
	}
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return nil, "", "", fmt.Errorf("data directory: %w", err)
	}
	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(cfg.data, "kiln.db"), CacheBytes: cfg.cache})
	if errors.Is(err, sqlite.ErrLocked) {
		return nil, "", "", fmt.Errorf("another process is using the data directory %s (is another kiln serve running on it?): %w", cfg.data, err)
	}
	if err != nil {
		return nil, "", "", err
	}
	return db, "sqlite", cfg.data, nil
}

// withOps adds the operational endpoints beside the FHIR API.
func withOps(api http.Handler, st store.Pinger, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			http.Error(w, "store unreachable\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", api)
	return mux
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// numbersFromEnv applies numeric KILN_* variables whose flag was not given,
// strictly: a malformed value stops the server rather than leaving it to
// run with a limit nobody asked for.
func (c *serveConfig) numbersFromEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if v, ok := os.LookupEnv("KILN_MAX_BODY"); ok && !given["max-body"] {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("KILN_MAX_BODY=%q: want a positive number of bytes", v)
		}
		c.maxBody = n
	}
	if v, ok := os.LookupEnv("KILN_CACHE"); ok && !given["cache"] {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("KILN_CACHE=%q: want a number of bytes (0 disables the cache)", v)
		}
		c.cache = n
	}
	if c.cache < 0 {
		return fmt.Errorf("--cache must be a number of bytes (0 disables the cache)")
	}
	if c.maxBody <= 0 {
		return fmt.Errorf("--max-body must be a positive number of bytes")
	}
	for _, n := range []struct {
		flag, env string
		dst       *int64
	}{
		{"export-file-size", "KILN_EXPORT_FILE_SIZE", &c.exportFileSize},
	} {
		if v, ok := os.LookupEnv(n.env); ok && !given[n.flag] {
			x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return fmt.Errorf("%s=%q: want a number", n.env, v)
			}
			*n.dst = x
		}
	}
	for _, n := range []struct {
		flag, env string
		dst       *int
	}{
		{"export-workers", "KILN_EXPORT_WORKERS", &c.exportWorkers},
		{"export-max-jobs", "KILN_EXPORT_MAX_JOBS", &c.exportMaxJobs},
	} {
		if v, ok := os.LookupEnv(n.env); ok && !given[n.flag] {
			x, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%s=%q: want a number", n.env, v)
			}
			*n.dst = x
		}
	}
	for _, n := range []struct {
		flag, env string
		dst       *time.Duration
	}{
		{"export-expiry", "KILN_EXPORT_EXPIRY", &c.exportExpiry},
		{"access-token-ttl", "KILN_ACCESS_TOKEN_TTL", &c.accessTTL},
		{"refresh-token-ttl", "KILN_REFRESH_TOKEN_TTL", &c.refreshTTL},
		{"auth-code-ttl", "KILN_AUTH_CODE_TTL", &c.codeTTL},
		{"export-lease", "KILN_EXPORT_LEASE", &c.exportLease},
		{"export-min-poll", "KILN_EXPORT_MIN_POLL", &c.exportMinPoll},
		{"mongo-timeout", "KILN_MONGO_TIMEOUT", &c.mongoTimeout},
	} {
		if v, ok := os.LookupEnv(n.env); ok && !given[n.flag] {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%s=%q: want a duration (1h, 30m)", n.env, v)
			}
			*n.dst = d
		}
	}
	if c.mongoTimeout <= 0 {
		return fmt.Errorf("--mongo-timeout must be a positive duration")
	}
	if c.exportMinPoll < 0 {
		return fmt.Errorf("--export-min-poll must be a duration, 0 or more")
	}
	if c.exportWorkers <= 0 || c.exportMaxJobs <= 0 || c.exportFileSize <= 0 || c.exportExpiry <= 0 || c.exportLease <= 0 {
		return fmt.Errorf("--export-workers, --export-max-jobs, --export-file-size, --export-expiry and --export-lease must be positive")
	}
	// A zero lifetime would fall back to smart.Config's default silently;
	// one shorter than a second is rounded away by fosite.
	if c.accessTTL < time.Second || c.refreshTTL < time.Second || c.codeTTL < time.Second {
		return fmt.Errorf("--access-token-ttl, --refresh-token-ttl and --auth-code-ttl must be at least 1s")
	}
	return nil
}
