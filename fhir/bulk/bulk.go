// Package bulk is Kiln's Bulk Data export (Bulk Data Access IG 2.0,
// https://hl7.org/fhir/uv/bulkdata/export.html): the $export kick-off at
// system, Patient and Group level, the status endpoint (poll, cancel), the
// manifest and the NDJSON files.
//
// An export is a job kept in the store (Jobs): any Kiln process sharing
// the store can poll, cancel or serve it, and a bounded pool of workers in
// each process claims queued jobs with a lease. A worker that stops (a
// restart, a crash) loses its lease and the next claim starts the job
// again from the beginning at the same transactionTime, so the result is
// the same; a job interrupted MaxAttempts times fails with an
// OperationOutcome that says so. Files are written to the store in chunks
// and streamed from it, so neither side ever holds a file in memory.
//
// The export reads the store as of transactionTime (store.Scanner): for
// each resource its version current at that instant, so that writes made
// while the job runs are not half-included (export.html#response---complete-status,
// transactionTime).
//
// cmd/kiln puts Handler in front of the REST API: Match says which
// requests are bulk's. fhir/rest does not know about this package.
package bulk

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-fhir/kiln/fhir/audit"
	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Jobs keeps export jobs and their files: store.Jobs, which both backends
// implement.
type Jobs = store.Jobs

// Store is everything an export needs from a backend.
type Store interface {
	Jobs
	// Records keeps each running job's last poll (E-ST-02, status.go),
	// shared by every process serving the store.
	store.Records
	store.Scanner
	store.Resources
	store.Searcher
}

// Authorizer decides what a client may export. cmd/kiln adapts the SMART
// grant of the request's bearer token to it; nil (--auth=none) lets every
// client export everything and sets requiresAccessToken to false.
//
// It is asked on every bulk request: kick-off, status, cancel and file
// download (export.html#bulk-data-output-file-request: files are protected
// like the kick-off).
type Authorizer interface {
	// Export returns the grant of the request's credentials, or an
	// *outcome.Error: 401 without or with an invalid token, 403 when the
	// token may not export at all (no system/, user/ or patient/ read
	// scope).
	Export(r *http.Request) (Grant, error)
}

// Identifier is optionally implemented by an Authorizer: it names the
// client of credentials that Export refused with 403 (a valid token
// without a scope an export can use), so that the refusal is audited
// like every other export step (Config.Audit). ok is false when the
// credentials name no client.
type Identifier interface {
	Identify(r *http.Request) (g Grant, ok bool)
}

// Grant is what one client may export.
type Grant struct {
	// Client identifies the client: only the client that started an
	// export may poll, cancel or download it.
	Client string
	// Types lists the resource types the client may read; nil means all.
	Types []string
	// Patient, when set, confines the client to that patient's
	// compartment (patient/ scopes, or a user/ token with a patient
	// context): every level then exports that compartment only.
	Patient string
	// ClientID and FHIRUser are the token's app and user, for the audit
	// trail (Config.Audit); a grant without ClientID is not audited.
	ClientID, FHIRUser string
}

// Auditor receives one event per bulk request made with a token
// (fhir/audit.Writer, the same writer as the REST API's). Record must
// not block.
type Auditor interface {
	Record(audit.Event)
}

func (g Grant) allows(typ string) bool {
	if g.Types == nil {
		return true
	}
	for _, t := range g.Types {
		if t == typ {
			return true
		}
	}
	return false
}

// Config configures the export service. Zero values take the defaults
// named on each field.
type Config struct {
	// BaseURL is the public base for Content-Location and file URLs;
	// empty derives it from each kick-off request.
	BaseURL string
	// Workers is how many exports run at once in this process (2).
	Workers int
	// Lanes is how many resource types one export reads at once (2): a
	// type is read on one core, the store's pace; more lanes use more
	// cores, and hold a page and a chunk buffer each.
	Lanes int
	// MaxJobs is how many exports may be queued or running at once, over
	// every process sharing the store; a kick-off past it gets 429 (4).
	MaxJobs int
	// MaxFileSize is where a type's NDJSON is split into another file, in
	// bytes (128 MiB).
	MaxFileSize int64
	// Expiry is how long the files of a finished export are kept (1 h).
	Expiry time.Duration
	// Lease is how long a worker holds a job without renewing it; another
	// worker may take over after (30 s).
	Lease time.Duration
	// Poll is how often an idle worker looks for jobs started by another
	// process, and expired ones are removed (1 s).
	Poll time.Duration
	// RetryAfter is the delay suggested to pollers and to clients refused
	// with 429 (2 s).
	RetryAfter time.Duration
	// MinPoll is the least time between two status polls of a running
	// export; a poll sooner gets 429 with Retry-After (E-ST-02). The
	// default (50 ms) refuses a client polling in a loop without waiting,
	// not one polling on a timer; negative turns the check off.
	MinPoll time.Duration
	// Settle is how long a job waits after transactionTime before reading:
	// a write stamped just before transactionTime may still be committing
	// at kick-off (500 ms).
	Settle time.Duration
	// MaxAttempts is how many times a job is started before an interrupted
	// job fails instead (3).
	MaxAttempts int
	// Authorizer checks every request; nil is --auth=none.
	Authorizer Authorizer
	// Audit receives one event per request whose grant names a client
	// (kick-off, status, file, cancel; audit.go); nil records nothing.
	Audit Auditor
	// Registry gives the Patient compartment and parses _typeFilter; nil
	// is search.Default().
	Registry *search.Registry
	// Logger receives one line per job event (ids and counts only); nil
	// discards.
	Logger *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time

	pageSize int                          // resources per Scan (500)
	pageHook func(job string, typ string) // tests: called after each page
}

const kind = "export"

// Handler serves the bulk endpoints and runs the workers.
type Handler struct {
	cfg   Config
	st    Store
	owner string // this process's worker id prefix

	wake   chan struct{} // a kick-off: let an idle worker claim at once
	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once

	mu        sync.Mutex
	reading   map[string]int // job → downloads in flight (E-FI-06)
	compCache map[string]*compartment
}

// New returns the handler and starts its workers; Close stops them.
func New(cfg Config, st Store) *Handler {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 4
	}
	if cfg.Lanes <= 0 {
		cfg.Lanes = 2
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = 128 << 20
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = time.Hour
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 2 * time.Second
	}
	if cfg.MinPoll == 0 {
		cfg.MinPoll = 50 * time.Millisecond
	}
	if cfg.Settle < 0 {
		cfg.Settle = 0
	} else if cfg.Settle == 0 {
		cfg.Settle = 500 * time.Millisecond
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Registry == nil {
		cfg.Registry = search.Default()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.pageSize <= 0 {
		cfg.pageSize = 500
	}
	h := &Handler{cfg: cfg, st: st, owner: uuid.NewString(),
		wake: make(chan struct{}, cfg.Workers), stop: make(chan struct{}),
		reading: map[string]int{}, compCache: map[string]*compartment{}}
	for i := range cfg.Workers {
		h.wg.Add(1)
		go h.work(i)
	}
	return h
}

// Close stops the workers. A job in progress is handed back (queued) so
// that the next process to start resumes it at once; Close waits for that.
func (h *Handler) Close() {
	h.closed.Do(func() {
		close(h.stop)
		h.wg.Wait()
	})
}

// Paths of the bulk endpoints, below the base.
const (
	statusPath = "/$export-status/"
	filePath   = "/$export-file/"
)

// Match reports whether r is for this handler: a kick-off, a status or a
// file request.
func (h *Handler) Match(r *http.Request) bool {
	_, ok := route(r.URL.Path)
	return ok
}

type endpoint struct {
	what     string // "kickoff", "status", "file"
	level    string // kick-off: "system", "patient", "group"
	id, file string
}

func route(p string) (endpoint, bool) {
	switch {
	case p == "/$export":
		return endpoint{what: "kickoff", level: levelSystem}, true
	case p == "/Patient/$export":
		return endpoint{what: "kickoff", level: levelPatient}, true
	case strings.HasPrefix(p, "/Group/") && strings.HasSuffix(p, "/$export"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/Group/"), "/$export")
		if id == "" || strings.Contains(id, "/") {
			return endpoint{}, false
		}
		return endpoint{what: "kickoff", level: levelGroup, id: id}, true
	case strings.HasPrefix(p, statusPath):
		id := strings.TrimPrefix(p, statusPath)
		return endpoint{what: "status", id: id}, id != "" && !strings.Contains(id, "/")
	case strings.HasPrefix(p, filePath):
		id, file, ok := strings.Cut(strings.TrimPrefix(p, filePath), "/")
		return endpoint{what: "file", id: id, file: file}, ok && id != "" && file != "" && !strings.Contains(file, "/")
	}
	return endpoint{}, false
}

// ServeHTTP answers a request Match accepted; anything else is 404. It
// logs one line per request as the REST API does (no query string, no
// body: both may hold patient data).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 200 {
		id = uuid.NewString()
	}
	w.Header().Set("X-Request-Id", id)
	sw := &statusWriter{ResponseWriter: w}
	ep, ok := route(r.URL.Path)
	ra := &requestAudit{}
	r = r.WithContext(context.WithValue(r.Context(), auditKey{}, ra))
	var err error
	interaction := "export-" + ep.what
	switch {
	case !ok:
		interaction = "unknown"
		err = outcome.Newf(http.StatusNotFound, outcome.CodeNotSupported, "no bulk endpoint at %s", r.URL.Path)
	case ep.what == "kickoff" && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		err = h.kickoff(sw, r, ep)
	case ep.what == "status" && r.Method == http.MethodGet:
		err = h.status(sw, r, ep.id)
	case ep.what == "status" && r.Method == http.MethodDelete:
		interaction = "export-cancel"
		err = h.cancel(sw, r, ep.id)
	case ep.what == "file" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		err = h.file(sw, r, ep.id, ep.file)
	default:
		err = outcome.Newf(http.StatusMethodNotAllowed, outcome.CodeNotSupported, "%s is not supported on %s", r.Method, r.URL.Path)
	}
	attrs := []slog.Attr{slog.String("request_id", id), slog.String("method", r.Method),
		slog.String("interaction", interaction)}
	if err != nil {
		e := outcome.As(err)
		if e.Status >= 500 {
			h.cfg.Logger.Error("bulk request failed", "request_id", id, "interaction", interaction, "error", err)
		}
		attrs = append(attrs, slog.String("outcome", e.LogString()))
		outcome.Write(sw, e)
	}
	h.audit(r, sw, ep, ra, start)
	attrs = append(attrs, slog.Int("status", sw.status), slog.Int64("bytes", sw.bytes),
		slog.Duration("duration", time.Since(start)))
	h.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// statusWriter remembers the status and counts the bytes of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets a file stream reach the client as it is read.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// grant authorizes r; without an Authorizer every client is the same
// anonymous one with every type.
func (h *Handler) grant(r *http.Request) (Grant, error) {
	if h.cfg.Authorizer == nil {
		return Grant{}, nil
	}
	g, err := h.cfg.Authorizer.Export(r)
	ra, ok := r.Context().Value(auditKey{}).(*requestAudit)
	switch {
	case !ok:
	case err == nil:
		ra.grant, ra.granted = g, true
	case outcome.As(err).Status == http.StatusForbidden:
		if id, ok := h.cfg.Authorizer.(Identifier); ok {
			ra.grant, ra.granted = id.Identify(r)
		}
	}
	return g, err
}

// base is the public base URL for r.
func (h *Handler) base(r *http.Request) string {
	if h.cfg.BaseURL != "" {
		return strings.TrimRight(h.cfg.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (h *Handler) now() time.Time { return h.cfg.Now().UTC().Truncate(time.Microsecond) }
