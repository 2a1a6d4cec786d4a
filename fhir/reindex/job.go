package reindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// progress is a reindex job's store.Job.Progress: where it is, for a run
// that resumes it and for $reindex-status.
type progress struct {
	// Pass is "full" (every current resource of the types), "catch-up"
	// (what was written since the job was created) or "done".
	Pass   string `json:"pass"`
	At     Cursor `json:"at"`
	Counts Counts `json:"counts"`
}

// result is a finished job's store.Job.Result.
type result struct {
	Counts Counts `json:"counts"`
	Error  string `json:"error,omitempty"`
	// Superseded: the SearchParameter changed again (or left) before the
	// job ran; the newer version's job does the work.
	Superseded bool `json:"superseded,omitempty"`
}

// errLost ends a run whose job was cancelled or taken over.
var errLost = errors.New("reindex: job taken over or removed")

// progressEvery bounds how often a running job writes its progress (and
// renews its lease).
const progressEvery = 250 * time.Millisecond

// work is the worker: it refreshes every Poll and runs the jobs it
// claims, one at a time, until Close.
func (m *Registry) work() {
	defer close(m.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		if err := m.refresh(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Logger.Warn("reindex: reading the search parameters failed", "error", err)
		}
		ran := m.claimAndRun(ctx)
		if ctx.Err() != nil {
			return
		}
		if ran {
			continue // there may be another
		}
		select {
		case <-m.stop:
			return
		case <-m.wake:
		case <-time.After(m.cfg.Poll):
		}
	}
}

// claimAndRun claims the oldest queued job and runs it, unless another
// worker of the deployment is running one: jobs run one at a time, so that
// two never write the same resources' entries with different registries.
func (m *Registry) claimAndRun(ctx context.Context) bool {
	if m.othersRunning(ctx, "") {
		return false
	}
	job, err := m.st.ClaimJob(ctx, Kind, m.owner, m.cfg.Now(), m.cfg.Lease)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false
	case err != nil:
		if ctx.Err() == nil {
			m.cfg.Logger.Warn("reindex: claiming a job failed", "error", err)
		}
		return false
	}
	// Two workers that claimed at once both see the other: the later job
	// goes back to the queue.
	if m.othersRunning(ctx, job.ID) {
		job.State, job.LeaseUntil = store.JobQueued, time.Time{}
		_ = m.st.UpdateJob(ctx, job)
		return false
	}
	m.runJob(ctx, job)
	return true
}

// othersRunning reports whether a job other than mine, created before it
// (or any, when mine is ""), is running under a live lease.
func (m *Registry) othersRunning(ctx context.Context, mine string) bool {
	jobs, err := m.st.Jobs(ctx, Kind)
	if err != nil {
		return true // try again at the next Poll
	}
	now := m.cfg.Now()
	var me store.Job
	for _, j := range jobs {
		if j.ID == mine {
			me = j
		}
	}
	for _, j := range jobs {
		if j.ID == mine || j.State != store.JobRunning || !j.LeaseUntil.After(now) {
			continue
		}
		if mine == "" || j.Created.Before(me.Created) || (j.Created.Equal(me.Created) && j.ID < me.ID) {
			return true
		}
	}
	return false
}

// runJob runs a claimed job to its end, or hands it back.
func (m *Registry) runJob(ctx context.Context, job store.Job) {
	var sp jobSpec
	if err := json.Unmarshal(job.Spec, &sp); err != nil {
		m.finish(ctx, job, store.JobFailed, result{Error: "the job's spec cannot be read"})
		return
	}
	if job.Attempts > m.cfg.MaxAttempts {
		m.finish(ctx, job, store.JobFailed, result{Error: fmt.Sprintf("the job was interrupted %d times and was given up", job.Attempts-1)})
		return
	}
	if err := m.refresh(ctx); err != nil {
		m.handBack(job, err)
		return
	}
	if !sp.Drop && sp.Param != "" {
		if p := m.cur.Load().params[sp.Param]; p == nil || p.version != sp.Version || p.state == stateInvalid {
			m.finish(ctx, job, store.JobDone, result{Superseded: true})
			return
		}
	}
	var pr progress
	_ = json.Unmarshal([]byte(job.Progress), &pr) // "queued" on a new job
	if pr.Pass == "" {
		pr.Pass = "full"
		total, err := Count(ctx, m.st, sp.Types)
		if err != nil {
			m.handBack(job, err)
			return
		}
		pr.Counts.Total = total
	}
	m.cfg.Logger.Info("reindex job started", "job", job.ID, "pass", pr.Pass, "attempt", job.Attempts)
	last := time.Time{}
	report := func(ctx context.Context, at Cursor, n Counts) error {
		now := m.cfg.Now()
		if now.Sub(last) < progressEvery {
			return ctx.Err()
		}
		last = now
		pr.At, pr.Counts = at, n
		return m.save(ctx, &job, pr)
	}
	rb := Rebuild{Store: m.st, Registry: m.Index(), Types: sp.Types, Page: m.cfg.Page, Progress: report}
	var err error
	if pr.Pass == "full" {
		if pr.Counts, err = rb.Run(ctx, pr.At, pr.Counts); err == nil {
			pr.Pass, pr.At = "catch-up", Cursor{}
			err = m.save(ctx, &job, pr)
		}
	}
	if err == nil && pr.Pass == "catch-up" {
		// Every process has refreshed Settle after the job was created;
		// what any of them wrote before that may lack the entries.
		select {
		case <-time.After(time.Until(job.Created.Add(m.cfg.Settle))):
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err == nil {
			rb.Registry, rb.Since = m.Index(), job.Created.Add(-clockSkew)
			pr.Counts, err = rb.Run(ctx, pr.At, pr.Counts)
		}
	}
	switch {
	case err == nil:
		pr.Pass = "done"
		body, _ := json.Marshal(pr)
		job.Progress = string(body)
		m.finish(ctx, job, store.JobDone, result{Counts: pr.Counts})
		m.cfg.Logger.Info("reindex job done", "job", job.ID, "updated", pr.Counts.Updated, "failed", pr.Counts.Failed)
		if err := m.refresh(ctx); err != nil {
			m.cfg.Logger.Warn("reindex: reading the search parameters failed", "error", err)
		}
	case errors.Is(err, errLost):
		m.cfg.Logger.Warn("reindex job taken over or removed", "job", job.ID)
	case ctx.Err() != nil:
		m.handBack(job, err)
	default:
		m.cfg.Logger.Error("reindex job failed", "job", job.ID, "error", err)
		m.finish(ctx, job, store.JobFailed, result{Counts: pr.Counts, Error: "the reindex failed on the server"})
	}
}

// save writes the job's progress and renews its lease.
func (m *Registry) save(ctx context.Context, job *store.Job, pr progress) error {
	body, err := json.Marshal(pr)
	if err != nil {
		return err
	}
	job.Progress, job.LeaseUntil = string(body), m.cfg.Now().Add(m.cfg.Lease)
	err = m.st.UpdateJob(ctx, *job)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrVersionConflict) {
		return errLost
	}
	return err
}

// handBack queues a job again (Close, or a store error before it
// started), for the next claim to resume from its last progress.
func (m *Registry) handBack(job store.Job, why error) {
	job.State, job.LeaseUntil = store.JobQueued, time.Time{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.st.UpdateJob(ctx, job); err != nil {
		m.cfg.Logger.Warn("reindex job not handed back", "job", job.ID, "reason", err.Error())
		return
	}
	m.cfg.Logger.Info("reindex job handed back", "job", job.ID, "reason", why.Error())
}

// finish records a job's end.
func (m *Registry) finish(ctx context.Context, job store.Job, st store.JobState, res result) {
	body, _ := json.Marshal(res)
	job.State, job.Result = st, body
	if err := m.st.UpdateJob(context.WithoutCancel(ctx), job); err != nil {
		m.cfg.Logger.Warn("reindex job end not recorded", "job", job.ID, "reason", err.Error())
	}
}
