// Package audit records FHIR requests made with a token as R4 AuditEvent
// resources (auditevent.html), written off the request path by a bounded
// background writer.
//
// The REST layer reports one Event per request (Record never blocks: a
// full queue drops the event, counts it and logs a warning); the writer
// turns events into AuditEvents in batches, works out which patients each
// concerns, and commits them through the normal store.Commit with their
// search index entries, so that AuditEvent searches (and a patient's
// `patient/AuditEvent.rs`, through the `patient` parameter) find them.
package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Event is what one request did, as the REST layer saw it.
type Event struct {
	Time time.Time
	// Interaction is the interaction code the router matched: a
	// restful-interaction code ("read", "search-type", …), "$name" for an
	// operation, or "unknown"/"invalid-id".
	Interaction string
	// Status is the HTTP status answered.
	Status int
	// ClientID, FHIRUser and Patient come from the token (rest.Access).
	ClientID string
	FHIRUser string
	Patient  string
	// Target is the resource the request addressed ("Observation/1",
	// "Observation/1/_history/2"); "" for type and system interactions.
	Target string
	// Query is the search a request ran ("Observation?code=…", relative
	// to the base). It may hold patient data: it goes into the
	// AuditEvent only, never into a log.
	Query string
	// Base is the request's base URL (to read absolute references).
	Base string
	// Operation, when set, names the operation the request belongs to
	// ("export" for every bulk export request: kick-off, status, file
	// download, cancel): a second subtype coding in urn:kiln:operation.
	Operation string
	// Job is the URL of the asynchronous job the request started or
	// addressed (a bulk export's status URL): an entity with object-role
	// 20 Job, identified by the URL (it is not a FHIR resource), and
	// JobStep (no patient data: "kick-off", "status", "download
	// Patient-1.ndjson", "cancel") its description.
	Job, JobStep string
	// Touched are the resources the response carried or the request
	// wrote: the writer derives the patients concerned from them.
	Touched [][]byte
}

// size is what the event holds in memory while queued.
func (e *Event) size() int64 {
	n := int64(256 + len(e.Query) + len(e.Target))
	for _, b := range e.Touched {
		n += int64(len(b))
	}
	return n
}

// Config tunes the writer; zero values take the defaults.
type Config struct {
	// Queue is how many events may wait to be written (default 4096).
	Queue int
	// MaxPending bounds the bytes queued events hold (the resources they
	// touched, kept until the writer derives the patients; default 64 MiB).
	MaxPending int64
	// Batch is how many events one commit writes (default 100).
	Batch int
	// Interval is the longest an event waits before its batch is written
	// (default 500ms).
	Interval time.Duration
	// Registry indexes the AuditEvents and tells compartment membership;
	// nil is search.Default().
	Registry *search.Registry
	// Observer names the server in AuditEvent.source.observer.display
	// (default "Kiln").
	Observer string
	Logger   *slog.Logger
	// Metrics registers the writer's counters; nil registers none.
	Metrics prometheus.Registerer
}

// Writer is the bounded background writer. Its methods are safe for
// concurrent use.
type Writer struct {
	cfg     Config
	st      store.Resources
	queue   chan Event
	pending atomic.Int64 // bytes held by queued events
	closing sync.Once
	done    chan struct{}
	stop    chan struct{}

	written, dropped, failed prometheus.Counter
	drops                    atomic.Int64
	lastWarn                 atomic.Int64 // unix nanos of the last overflow warning
}

// New starts a writer committing to st. Close stops it.
func New(cfg Config, st store.Resources) *Writer {
	w := newWriter(cfg, st)
	go w.run()
	return w
}

// newWriter is a writer whose loop is not started.
func newWriter(cfg Config, st store.Resources) *Writer {
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 64 << 20
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.Registry == nil {
		cfg.Registry = search.Default()
	}
	if cfg.Observer == "" {
		cfg.Observer = "Kiln"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		cfg: cfg, st: st,
		queue: make(chan Event, cfg.Queue),
		done:  make(chan struct{}),
		stop:  make(chan struct{}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_audit_events_written_total", Help: "AuditEvents committed to the store.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_audit_events_dropped_total", Help: "Audited requests whose AuditEvent was dropped because the audit queue was full.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_audit_events_failed_total", Help: "AuditEvents lost because the store refused their batch.",
		}),
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(w.written, w.dropped, w.failed)
	}
	return w
}

// Record queues e for writing and returns at once: when the queue is full
// (or holds MaxPending bytes) the event is dropped, counted in
// kiln_audit_events_dropped_total and warned about (at most once a
// second), so that auditing never slows or blocks a request.
func (w *Writer) Record(e Event) {
	n := e.size()
	if w.pending.Add(n) > w.cfg.MaxPending {
		w.pending.Add(-n)
		w.drop()
		return
	}
	select {
	case w.queue <- e:
	default:
		w.pending.Add(-n)
		w.drop()
	}
}

func (w *Writer) drop() {
	w.dropped.Inc()
	w.drops.Add(1)
	now := time.Now().UnixNano()
	last := w.lastWarn.Load()
	if now-last >= int64(time.Second) && w.lastWarn.CompareAndSwap(last, now) {
		w.cfg.Logger.Warn("audit queue full: AuditEvents are being dropped (see kiln_audit_events_dropped_total)")
	}
}

// Dropped is how many events were dropped so far.
func (w *Writer) Dropped() int64 {
	return w.drops.Load()
}

// Close writes what is queued and stops the writer. Events recorded after
// Close are dropped.
func (w *Writer) Close() error {
	w.closing.Do(func() { close(w.stop) })
	<-w.done
	return nil
}

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	var batch []Event
	for {
		select {
		case e := <-w.queue:
			batch = append(batch, e)
			if len(batch) >= w.cfg.Batch {
				batch = w.flush(batch)
			}
		case <-tick.C:
			batch = w.flush(batch)
		case <-w.stop:
			for {
				select {
				case e := <-w.queue:
					batch = append(batch, e)
					if len(batch) >= w.cfg.Batch {
						batch = w.flush(batch)
					}
				default:
					w.flush(batch)
					return
				}
			}
		}
	}
}

// flush commits batch as one store commit and returns the emptied slice.
func (w *Writer) flush(batch []Event) []Event {
	if len(batch) == 0 {
		return batch
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	changes := make([]store.Change, 0, len(batch))
	var held int64
	for i := range batch {
		held += batch[i].size()
		ch, err := w.change(ctx, &batch[i])
		if err != nil {
			// A bug, not an input problem: the writer builds the resource.
			w.failed.Inc()
			w.cfg.Logger.Error("audit: building an AuditEvent failed", "interaction", batch[i].Interaction, "err", err)
			continue
		}
		changes = append(changes, ch)
	}
	w.pending.Add(-held)
	if err := w.st.Commit(ctx, changes...); err != nil {
		w.failed.Add(float64(len(changes)))
		w.cfg.Logger.Error("audit: writing AuditEvents failed", "events", len(changes), "err", err)
	} else {
		w.written.Add(float64(len(changes)))
	}
	clear(batch)
	return batch[:0]
}

// change renders e as a stored AuditEvent with its index entries.
func (w *Writer) change(ctx context.Context, e *Event) (store.Change, error) {
	body, err := json.Marshal(w.resource(ctx, e))
	if err != nil {
		return store.Change{}, err
	}
	parsed, err := resource.Parse(body)
	if err != nil {
		return store.Change{}, fmt.Errorf("audit: invalid AuditEvent: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	id := uuid.Must(uuid.NewV7()).String()
	stamped, err := parsed.Stamp(id, 1, now)
	if err != nil {
		return store.Change{}, err
	}
	index, err := w.cfg.Registry.Extract("AuditEvent", stamped)
	if err != nil {
		return store.Change{}, err
	}
	return store.Change{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: now, Method: store.MethodPost, Body: stamped, Index: index}, nil
}

// Code systems of R4 AuditEvent (auditevent.html, valueset-audit-event-type,
// valueset-audit-entity-type, valueset-object-role, valueset-audit-source-type).
const (
	systemEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	systemInteraction = "http://hl7.org/fhir/restful-interaction"
	systemEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	systemObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	systemSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	systemDICOM       = "http://dicom.nema.org/resources/ontology/DCM"
	systemRoleType    = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
	// systemClient names client_ids in agent.who.identifier.
	systemClient = "urn:kiln:client"
	// systemOperation names operations in a subtype (Event.Operation).
	systemOperation = "urn:kiln:operation"
	// systemURI identifies a job by its URL (identifier-registry: RFC 3986).
	systemURI = "urn:ietf:rfc:3986"
)

// interactions are the restful-interaction codes (valueset-type-restful-
// interaction) with the action each one is (auditevent.html, "Using
// AuditEvent for RESTful operations": read, vread and history R; create C;
// update and patch U; delete D; search, operations, batch and transaction
// E).
var interactions = map[string]string{
	"read": "R", "vread": "R", "history-instance": "R", "history-type": "R", "history-system": "R",
	"create": "C", "update": "U", "patch": "U", "delete": "D",
	"search-type": "E", "search-system": "E", "batch": "E", "transaction": "E", "operation": "E",
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type concept struct {
	Coding []coding `json:"coding"`
}

type agent struct {
	Type      *concept   `json:"type,omitempty"`
	Who       *reference `json:"who,omitempty"`
	Requestor bool       `json:"requestor"`
}

type entity struct {
	What        *reference `json:"what,omitempty"`
	Type        *coding    `json:"type,omitempty"`
	Role        *coding    `json:"role,omitempty"`
	Description string     `json:"description,omitempty"`
	Query       string     `json:"query,omitempty"`
}

type auditEvent struct {
	ResourceType string   `json:"resourceType"`
	Type         coding   `json:"type"`
	Subtype      []coding `json:"subtype,omitempty"`
	Action       string   `json:"action"`
	Recorded     string   `json:"recorded"`
	Outcome      string   `json:"outcome"`
	OutcomeDesc  string   `json:"outcomeDesc"`
	Agent        []agent  `json:"agent"`
	Source       struct {
		Observer reference `json:"observer"`
		Type     []coding  `json:"type"`
	} `json:"source"`
	Entity []entity `json:"entity,omitempty"`
}

// resource builds the AuditEvent of e.
func (w *Writer) resource(ctx context.Context, e *Event) *auditEvent {
	ae := &auditEvent{
		ResourceType: "AuditEvent",
		Type:         coding{System: systemEventType, Code: "rest", Display: "RESTful Operation"},
		Action:       "E",
		Recorded:     e.Time.UTC().Format(time.RFC3339Nano),
		Outcome:      outcomeOf(e.Status),
		OutcomeDesc:  strconv.Itoa(e.Status) + " " + http.StatusText(e.Status),
	}
	code := e.Interaction
	if strings.HasPrefix(code, "$") {
		code = "operation"
	}
	if action, ok := interactions[code]; ok {
		ae.Action = action
		ae.Subtype = []coding{{System: systemInteraction, Code: code}}
	}
	if e.Operation != "" {
		ae.Subtype = append(ae.Subtype, coding{System: systemOperation, Code: e.Operation, Display: "$" + e.Operation})
	}

	// The app, and the user it acts for: the user is the requestor when
	// there is one, else the app itself (a backend service).
	user := relative(e.FHIRUser)
	ae.Agent = append(ae.Agent, agent{
		Type:      &concept{Coding: []coding{{System: systemDICOM, Code: "110150", Display: "Application"}}},
		Who:       &reference{Identifier: &identifier{System: systemClient, Value: e.ClientID}, Display: e.ClientID},
		Requestor: user == "",
	})
	if user != "" {
		ae.Agent = append(ae.Agent, agent{
			Type:      &concept{Coding: []coding{{System: systemRoleType, Code: "humanuser", Display: "human user"}}},
			Who:       &reference{Reference: user},
			Requestor: true,
		})
	}
	ae.Source.Observer = reference{Display: w.cfg.Observer}
	ae.Source.Type = []coding{{System: systemSourceType, Code: "4", Display: "Application Server"}}

	object := &coding{System: systemEntityType, Code: "2", Display: "System Object"}
	if e.Target != "" {
		ae.Entity = append(ae.Entity, entity{What: &reference{Reference: e.Target}, Type: object,
			Role: &coding{System: systemObjectRole, Code: "4", Display: "Domain Resource"}})
	}
	if e.Job != "" {
		ae.Entity = append(ae.Entity, entity{What: &reference{Identifier: &identifier{System: systemURI, Value: e.Job}},
			Type: object, Role: &coding{System: systemObjectRole, Code: "20", Display: "Job"}, Description: e.JobStep})
	}
	if e.Query != "" {
		// sev-1: a query entity has no name. The query is base64Binary.
		ae.Entity = append(ae.Entity, entity{Type: object,
			Role:  &coding{System: systemObjectRole, Code: "24", Display: "Query"},
			Query: base64.StdEncoding.EncodeToString([]byte(e.Query))})
	}
	for _, p := range w.patients(ctx, e) {
		ae.Entity = append(ae.Entity, entity{What: &reference{Reference: "Patient/" + p},
			Type: &coding{System: systemEntityType, Code: "1", Display: "Person"},
			Role: &coding{System: systemObjectRole, Code: "1", Display: "Patient"}})
	}
	return ae
}

// outcomeOf maps an HTTP status to AuditEvent.outcome (valueset-audit-
// event-outcome): 0 success, 4 minor failure (the client's request was
// refused), 8 serious failure (the server failed).
func outcomeOf(status int) string {
	switch {
	case status >= 500:
		return "8"
	case status >= 400:
		return "4"
	}
	return "0"
}

// patients lists the ids of the patients e concerns, sorted: the patient
// in the token's context, the one the request addressed (Patient/X,
// Patient/X/…), and those whose record holds a resource the request read
// or wrote: the compartment (compartmentdefinition-patient.html) and the
// portal rules, as access control reads them (search.RecordPatients; a
// PaymentNotice concerns the patient of its Invoice, read from the
// store), so that "who looked at my chart" lists what the patient can
// see.
func (w *Writer) patients(ctx context.Context, e *Event) []string {
	set := map[string]bool{}
	if p := strings.TrimPrefix(e.Patient, "Patient/"); p != "" && !strings.Contains(p, "/") {
		set[p] = true
	}
	if rest, ok := strings.CutPrefix(e.Target, "Patient/"); ok {
		id, _, _ := strings.Cut(rest, "/")
		set[id] = true
	}
	for _, body := range e.Touched {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if json.Unmarshal(body, &head) != nil {
			continue
		}
		ids, err := w.cfg.Registry.RecordPatients(ctx, head.ResourceType, body, e.Base, w.read)
		if err != nil {
			// The event is still written, attributed to the patients
			// found otherwise; the type alone is logged (no patient data).
			w.cfg.Logger.Warn("audit: patients of a resource not found", "type", head.ResourceType, "err", err)
			continue
		}
		for _, id := range ids {
			set[id] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// read is search.ReadFunc on the store: the current version, if any.
func (w *Writer) read(ctx context.Context, typ, id string) ([]byte, bool, error) {
	res, err := w.st.Read(ctx, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGone):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return res.Body, true, nil
}

// relative keeps "Type/id" of a relative or absolute fhirUser (SMART's
// fhirUser claim is absolute; the index reads references as Type/id).
func relative(ref string) string {
	parts := strings.Split(strings.TrimRight(ref, "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1]
}
