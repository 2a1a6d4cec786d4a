package reindex

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-fhir/kiln/conformance/defs"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Custom SearchParameters (issue 3: custom search parameters without a
// restart).
//
// A SearchParameter resource stored through the API with status active
// joins the registry for its base types in two steps. At once it joins
// the index registry, which every write extracts its entries with, so that
// nothing written from then on lacks them; and a reindex job over its base
// types is queued in the store. Only when that job is done does it join the
// query registry, which searches are parsed with and the CapabilityStatement
// lists: until then a search by its code is an unknown parameter (and says
// it is being indexed), never a search that silently misses the resources
// written before it.
//
// State lives in the store, not in the process (design.md, Scale-out): the
// SearchParameter resources themselves, and one job per version of each,
// whose id is derived from the version (jobID) so that every process that
// notices the version creates the same job and the store keeps one. Every
// process re-reads both every Poll (refresh), and any process's worker may
// claim a job with a lease (store.Jobs), so with several processes on one
// MongoDB exactly one runs it, and a restart resumes it from its last page.
//
// A job runs in two passes. The first rebuilds every current resource of
// its types. A process that had not yet refreshed when the job was queued
// may still have written a resource without the new entries; so once
// Settle has passed since the job was created (every process has
// refreshed by then), a second pass rebuilds what was written since the
// job was created (less clockSkew). Jobs run one at a time over the whole
// deployment (claim), so two jobs never write the same rows with different
// registries.
//
// Deleting a SearchParameter, or making it anything but active, takes it
// out of both registries at once, and queues a job over its former types
// that rebuilds their entries without it, dropping its rows.

// Kind is the store.Job kind of reindex jobs.
const Kind = "reindex"

// clockSkew is how far the clocks of processes sharing a store may
// disagree: a catch-up pass starts this much before its job was created.
const clockSkew = 5 * time.Second

// Jobs is the job contract of store.Jobs (as fhir/bulk uses it).
type Jobs interface {
	CreateJob(ctx context.Context, j store.Job) error
	Job(ctx context.Context, id string) (store.Job, error)
	ClaimJob(ctx context.Context, kind, owner string, now time.Time, lease time.Duration) (store.Job, error)
	UpdateJob(ctx context.Context, j store.Job) error
	Jobs(ctx context.Context, kind string) ([]store.Job, error)
}

// RegistryStore is everything the Registry needs from a backend.
type RegistryStore interface {
	Store
	Jobs
	store.Resources
	store.Searcher
}

// Config configures a Registry. Zero values take the defaults named.
type Config struct {
	// Builtin is the registry without custom parameters (search.Default()).
	Builtin *search.Registry
	Logger  *slog.Logger
	// Poll is how often the SearchParameters and jobs are read again, and
	// a worker looks for a job (2 s).
	Poll time.Duration
	// Settle is how long after a job was created its catch-up pass starts
	// (3 Poll): by then every process has refreshed.
	Settle time.Duration
	// Lease is how long a worker holds a job without renewing it (30 s).
	Lease time.Duration
	// MaxAttempts is how many times a job is claimed before it fails (5).
	MaxAttempts int
	// Page is the rebuild's page size (200).
	Page int
	Now  func() time.Time
	// NoWorker leaves jobs to other processes (and tests).
	NoWorker bool
}

// Registry is the live search parameter registry of one process: the
// built-in parameters plus the custom SearchParameters in the store, kept
// in step with them (as two search.Registry values, Query and Index), and
// the worker that runs their reindex jobs. It implements what fhir/rest
// needs (rest.SearchParams).
type Registry struct {
	cfg   Config
	st    RegistryStore
	owner string
	// cur is replaced whole by refresh, under mu, and read without a
	// lock by every request: a state is never changed once stored.
	cur atomic.Pointer[state]
	mu  sync.Mutex // one refresh at a time

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// param is one active SearchParameter resource as the Registry sees it.
type param struct {
	id      string
	version int64
	sp      spResource
	types   []string
	job     string
	state   string // stateIndexing, stateActive, stateFailed, stateInvalid
	reason  string
}

// The states $reindex-status reports.
const (
	stateIndexing = "indexing" // joined the index registry; its job is queued or running
	stateActive   = "active"   // searchable
	stateFailed   = "failed"   // its job failed: not searchable
	stateInvalid  = "invalid"  // stored (not through the API) but cannot be served
	stateInactive = "inactive" // not active (draft, retired, unknown): not in the registry
)

type state struct {
	query, index *search.Registry
	params       map[string]*param // by resource id
	key          string            // what the registries were built from
}

// New returns a Registry over st, loaded with the custom parameters already
// stored (a parameter whose job had completed is searchable at once), and
// starts its worker unless cfg.NoWorker.
func New(ctx context.Context, cfg Config, st RegistryStore) (*Registry, error) {
	if cfg.Builtin == nil {
		cfg.Builtin = search.Default()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * cfg.Poll
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	host, _ := os.Hostname()
	var r [6]byte
	_, _ = rand.Read(r[:])
	m := &Registry{cfg: cfg, st: st, owner: host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(r[:]),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	m.cur.Store(&state{query: cfg.Builtin, index: cfg.Builtin, params: map[string]*param{}})
	if err := m.refresh(ctx); err != nil {
		return nil, err
	}
	if cfg.NoWorker {
		close(m.done)
	} else {
		go m.work()
	}
	return m, nil
}

// Close stops the worker; a job in progress is handed back to be resumed.
func (m *Registry) Close() {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
}

// Query is the registry searches are parsed with: the built-in and the
// searchable custom parameters.
func (m *Registry) Query() *search.Registry { return m.cur.Load().query }

// Index is the registry index entries are extracted with: also the custom
// parameters still being indexed.
func (m *Registry) Index() *search.Registry { return m.cur.Load().index }

// Check validates a SearchParameter about to be stored as SearchParameter/id
// (its stamped body): an active one must be one the server can serve.
func (m *Registry) Check(ctx context.Context, id string, body []byte) error {
	sp, err := decodeSP(body)
	if err != nil || sp.Status != "active" {
		return err
	}
	var others []spResource
	for pid, p := range m.cur.Load().params {
		if pid != id && p.state != stateInvalid {
			others = append(others, p.sp)
		}
	}
	_, err = check(m.cfg.Builtin, others, sp)
	return err
}

// Changed tells the Registry that SearchParameter/id was written or
// deleted: it refreshes now (queueing the job) rather than at its next
// Poll, and wakes the worker.
func (m *Registry) Changed(ctx context.Context, id string) {
	if err := m.refresh(ctx); err != nil {
		m.cfg.Logger.Warn("reindex: reading the search parameters failed", "error", err)
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Indexing reports whether code is a custom parameter of one of types
// (any type when nil) still being indexed, and the id of its
// SearchParameter.
func (m *Registry) Indexing(types []string, code string) (string, bool) {
	for _, p := range m.cur.Load().params {
		if p.state != stateIndexing || p.sp.Code != code {
			continue
		}
		if types == nil || slices.ContainsFunc(types, func(t string) bool { return slices.Contains(p.types, t) }) {
			return p.id, true
		}
	}
	return "", false
}

// jobID is the job of version v of SearchParameter/id, or of dropping it
// when drop.
func jobID(id string, v int64, drop bool) string {
	if drop {
		return "reindex-drop-SearchParameter-" + id + "-" + strconv.FormatInt(v, 10)
	}
	return "reindex-SearchParameter-" + id + "-" + strconv.FormatInt(v, 10)
}

// jobSpec is a reindex job's store.Job.Spec.
type jobSpec struct {
	// Param and Version name the SearchParameter version the job indexes
	// (empty for a drop or a job started by hand).
	Param   string   `json:"param,omitempty"`
	Version int64    `json:"version,omitempty"`
	Code    string   `json:"code,omitempty"`
	Types   []string `json:"types"`
	Drop    bool     `json:"drop,omitempty"`
}

// storedSPs reads every current SearchParameter resource.
func (m *Registry) storedSPs(ctx context.Context) ([]store.Resource, error) {
	var out []store.Resource
	q := store.ScanQuery{Type: "SearchParameter", Count: 500}
	for {
		page, err := m.st.Scan(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("reindex: reading SearchParameters: %w", err)
		}
		out = append(out, page.Resources...)
		if page.Next == "" {
			return out, nil
		}
		q.After = page.Next
	}
}

// refresh reads the SearchParameters and the jobs, queues the jobs that
// are missing, and swaps in new registries when anything changed.
func (m *Registry) refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	stored, err := m.storedSPs(ctx)
	if err != nil {
		return err
	}
	jobs, err := m.st.Jobs(ctx, Kind)
	if err != nil {
		return fmt.Errorf("reindex: reading jobs: %w", err)
	}
	jobState := make(map[string]store.JobState, len(jobs))
	for _, j := range jobs {
		jobState[j.ID] = j.State
	}
	old := m.cur.Load()
	params := map[string]*param{}
	var keys []string
	for _, r := range stored {
		sp, err := decodeSP(r.Body)
		if err != nil || sp.Status != "active" {
			continue
		}
		p := &param{id: r.ID, version: r.Version, sp: sp, job: jobID(r.ID, r.Version, false)}
		if p.types, err = check(m.cfg.Builtin, nil, sp); err != nil {
			p.state, p.reason = stateInvalid, errorText(err)
		} else {
			switch jobState[p.job] {
			case store.JobDone:
				p.state = stateActive
			case store.JobFailed:
				p.state, p.reason = stateFailed, "its reindex job failed"
			case "":
				spec := jobSpec{Param: p.id, Version: p.version, Code: sp.Code, Types: p.types}
				// A new version that changes nothing the index depends on
				// (its description, say) stays searchable: its job is
				// recorded done without reading anything.
				if prev := old.params[p.id]; prev != nil && prev.state == stateActive && reflect.DeepEqual(prev.sp.SearchParameter, sp.SearchParameter) {
					if err := m.createJob(ctx, p.job, spec, store.JobDone); err != nil {
						return err
					}
					p.state = stateActive
					break
				}
				if err := m.createJob(ctx, p.job, spec, store.JobQueued); err != nil {
					return err
				}
				p.state = stateIndexing
			default:
				p.state = stateIndexing
			}
		}
		params[p.id] = p
		keys = append(keys, p.id+"@"+strconv.FormatInt(p.version, 10)+"="+p.state)
	}
	// A parameter that left (deleted, no longer active) has rows on its
	// former types: a job rebuilds them without it.
	for id, p := range old.params {
		// A newer version's own job rebuilds the types it keeps.
		if _, ok := params[id]; ok || p.state == stateInvalid {
			continue
		}
		if err := m.createJob(ctx, jobID(id, p.version, true), jobSpec{Param: id, Code: p.sp.Code, Types: p.types, Drop: true}, store.JobQueued); err != nil {
			return err
		}
	}
	slices.Sort(keys)
	key := strings.Join(keys, ",")
	if key == old.key {
		return nil // the same parameters in the same states
	}
	next := &state{params: params, key: key}
	var active, all []spResource
	for _, id := range sortedKeys(params) {
		p := params[id]
		switch p.state {
		case stateActive:
			active = append(active, p.sp)
			all = append(all, p.sp)
		case stateIndexing:
			all = append(all, p.sp)
		}
	}
	if next.query, err = with(m.cfg.Builtin, active); err != nil {
		return err
	}
	if next.index, err = with(m.cfg.Builtin, all); err != nil {
		return err
	}
	m.cur.Store(next)
	return nil
}

func with(reg *search.Registry, sps []spResource) (*search.Registry, error) {
	if len(sps) == 0 {
		return reg, nil
	}
	list := make([]defs.SearchParameter, 0, len(sps))
	for _, sp := range sps {
		list = append(list, sp.SearchParameter)
	}
	return reg.With(list...)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// createJob queues a job (or records one done that needs no work)
// unless it exists (another process, or an earlier refresh, created it).
func (m *Registry) createJob(ctx context.Context, id string, sp jobSpec, st store.JobState) error {
	spec, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	job := store.Job{ID: id, Kind: Kind, State: st, Created: m.cfg.Now(), Spec: spec, Progress: "queued"}
	if st == store.JobDone {
		job.Progress = `{"pass":"done","at":{"type":0},"counts":{"read":0,"updated":0,"skipped":0,"failed":0}}`
		job.Result = []byte(`{"counts":{"read":0,"updated":0,"skipped":0,"failed":0},"unchanged":true}`)
	}
	err = m.st.CreateJob(ctx, job)
	switch {
	case errors.Is(err, store.ErrVersionConflict):
		return nil
	case err != nil:
		return fmt.Errorf("reindex: queueing %s: %w", id, err)
	}
	if st == store.JobDone {
		return nil
	}
	m.cfg.Logger.Info("reindex job queued", "job", id, "types", len(sp.Types))
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}
