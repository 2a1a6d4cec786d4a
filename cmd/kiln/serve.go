package main

import (
	"context"
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

	"github.com/kiln-fhir/kiln/fhir/rest"
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
	// mongoURI selects the MongoDB backend instead of the embedded store;
	// mongoDB names its database (default: the URI's, else "kiln").
	mongoURI string
	mongoDB  string
}

// flags registers every flag with its KILN_* environment variable as the
// default, so that flags win over the environment.
func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", env("KILN_ADDR", ":8080"), "listen address (KILN_ADDR)")
	fs.StringVar(&c.data, "data", env("KILN_DATA", "./data"), "data directory of the embedded store (KILN_DATA)")
	fs.StringVar(&c.baseURL, "base-url", env("KILN_BASE_URL", ""), "public base URL for Location headers and links; empty derives it from each request (KILN_BASE_URL)")
	fs.Int64Var(&c.maxBody, "max-body", 16<<20, "largest request body in bytes; larger gets 413 (KILN_MAX_BODY)")
	fs.StringVar(&c.auth, "auth", env("KILN_AUTH", ""), "authorization mode: none (KILN_AUTH); required until SMART lands")
	fs.StringVar(&c.logLevel, "log-level", env("KILN_LOG_LEVEL", "info"), "debug, info, warn or error (KILN_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", env("KILN_LOG_FORMAT", "text"), "text or json (KILN_LOG_FORMAT)")
	fs.StringVar(&c.mongoURI, "mongo-uri", env("KILN_MONGO_URI", ""), "MongoDB connection string; when set, resources live in MongoDB instead of the embedded store (KILN_MONGO_URI)")
	fs.StringVar(&c.mongoDB, "mongo-db", env("KILN_MONGO_DB", ""), "MongoDB database name; default the URI's, else kiln (KILN_MONGO_DB)")
	fs.StringVar(&c.searchHandling, "search-handling", env("KILN_SEARCH_HANDLING", "lenient"), "unknown search parameters: lenient (ignored and reported) or strict (400) (KILN_SEARCH_HANDLING)")
}

func serve(ctx context.Context, args []string) error {
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
	case "":
		return errors.New("--auth is required: only --auth=none exists in this version (SMART authorization is not built yet)")
	default:
		return fmt.Errorf("--auth=%s is not supported: only none exists in this version", cfg.auth)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	db, backend, where, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	st := metered.Wrap(db, backend, reg)

	api := rest.New(rest.Config{
		BaseURL:      cfg.baseURL,
		MaxBody:      cfg.maxBody,
		Logger:       logger,
		Metrics:      rest.NewMetrics(reg),
		Version:      version,
		StrictSearch: cfg.searchHandling == "strict",
	}, st)

	srv := &http.Server{
		Addr:              cfg.addr,
		Handler:           withOps(api, st, reg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		db.Close()
		return err
	}
	logger.Info("kiln serving", "addr", ln.Addr().String(), "data", where, "store", backend, "version", version)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		db.Close()
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
	if err := db.Close(); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	logger.Info("stopped")
	return serr
}

// openStore opens the backend the configuration selects: MongoDB with
// --mongo-uri, the embedded SQLite store otherwise. It also says which,
// and where the data is (never the URI: it may hold credentials).
func openStore(ctx context.Context, cfg serveConfig, logger *slog.Logger) (store.Store, string, string, error) {
	if cfg.mongoURI != "" {
		db, err := mongo.Open(ctx, cfg.mongoURI, mongo.Options{Database: cfg.mongoDB, Logger: logger})
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
	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(cfg.data, "kiln.db")})
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
	if c.maxBody <= 0 {
		return fmt.Errorf("--max-body must be a positive number of bytes")
	}
	return nil
}
