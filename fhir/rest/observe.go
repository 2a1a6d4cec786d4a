package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// reqInfo is what the request log and metrics learn while a request is
// handled. Handlers fill it through the set* functions; only the serving
// goroutine touches it.
type reqInfo struct {
	id          string
	interaction string
	typ         string
	errCodes    string
	// What the audit records (audit.go): the access the token granted
	// (nil: not authenticated, no audit), the resource addressed, the
	// search run and the resources read or written.
	access  *Access
	target  string
	query   string
	touched [][]byte
}

type infoKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

func setInteraction(r *http.Request, code string) { info(r).interaction = code }
func setType(r *http.Request, typ string)         { info(r).typ = typ }
func requestID(r *http.Request) string            { return info(r).id }

func noteError(r *http.Request, oe *outcome.Error, _ error) { info(r).errCodes = oe.LogString() }

// Client-supplied request ids are echoed only when they look like ids, so
// a header cannot inject text into logs.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._\-:]{1,128}$`)

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter remembers the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observe is the operational middleware around every request: request id
// (http.html#X-Request-Id), trailing-slash tolerance, body limit, CORS
// for the capability statement, one log line and the metrics.
func (a *API) observe(w http.ResponseWriter, r *http.Request, next http.Handler) {
	start := time.Now()
	ri := &reqInfo{id: r.Header.Get("X-Request-Id")}
	if !requestIDPattern.MatchString(ri.id) {
		ri.id = newRequestID()
	}
	w.Header().Set("X-Request-Id", ri.id)
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
	if len(r.URL.Path) > 1 && strings.HasSuffix(r.URL.Path, "/") {
		// [base]/Patient/ is [base]/Patient, without a redirect.
		r.URL.Path = strings.TrimRight(r.URL.Path, "/")
		if r.URL.Path == "" {
			r.URL.Path = "/"
		}
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBody)
	}
	if r.URL.Path == "/metadata" {
		// http.html#cors: the capability statement is public.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "ETag, Location, X-Request-Id")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, X-Request-Id")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	next.ServeHTTP(sw, r)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	elapsed := time.Since(start)
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.observe(ri.interaction, ri.typ, sw.status, elapsed)
	}
	// No query string and no body in the log: both may hold patient data.
	attrs := []slog.Attr{
		slog.String("request_id", ri.id),
		slog.String("method", r.Method),
		slog.String("interaction", ri.interaction),
		slog.String("type", ri.typ),
		slog.Int("status", sw.status),
		slog.Int("bytes", sw.bytes),
		slog.Duration("duration", elapsed),
	}
	if ri.errCodes != "" {
		attrs = append(attrs, slog.String("outcome", ri.errCodes))
	}
	a.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	a.audit(r, ri, sw.status, start)
}

// Metrics are the Prometheus collectors of the HTTP layer.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_http_requests_total",
			Help: "FHIR HTTP requests by interaction, resource type and status.",
		}, []string{"interaction", "type", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kiln_http_request_duration_seconds",
			Help:    "FHIR HTTP request latency by interaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"interaction"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *Metrics) observe(interaction, typ string, status int, d time.Duration) {
	if interaction == "" {
		interaction = "unknown"
	}
	m.requests.WithLabelValues(interaction, typ, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(interaction).Observe(d.Seconds())
}
