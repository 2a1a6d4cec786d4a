package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/store"
)

// result is what a finished job keeps (store.Job.Result): the manifest's
// files, or why it failed.
type result struct {
	Output  []file          `json:"output"`
	Error   []file          `json:"error"`
	Deleted []file          `json:"deleted"`
	Status  int             `json:"status,omitempty"` // failed: the HTTP status of the poll answer
	Issues  []outcome.Issue `json:"issues,omitempty"` // failed: its OperationOutcome
}

// file is one NDJSON file of a job.
type file struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Errors that end a run without failing the job.
var (
	errCancelled = errors.New("bulk: export cancelled")    // the job was deleted
	errLostLease = errors.New("bulk: export taken over")   // another worker holds it
	errStopping  = errors.New("bulk: worker stopping now") // Close
)

// work is one worker: it claims jobs until Close, and between them
// removes expired ones.
func (h *Handler) work(n int) {
	defer h.wg.Done()
	owner := fmt.Sprintf("%s/%d", h.owner, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.stop
		cancel()
	}()
	for {
		job, err := h.st.ClaimJob(ctx, kind, owner, h.now(), h.cfg.Lease)
		switch {
		case err == nil:
			h.runJob(ctx, job)
			continue
		case errors.Is(err, store.ErrNotFound):
		case ctx.Err() != nil:
			return
		default:
			h.cfg.Logger.Error("bulk: claiming a job failed", "error", err)
		}
		if n == 0 {
			h.sweep(ctx)
		}
		select {
		case <-h.stop:
			return
		case <-h.wake:
		case <-time.After(h.cfg.Poll):
		}
	}
}

// runJob runs a claimed job to its end, or hands it back.
func (h *Handler) runJob(ctx context.Context, job store.Job) {
	var sp spec
	if err := json.Unmarshal(job.Spec, &sp); err != nil {
		h.fail(ctx, job, outcome.New(http.StatusInternalServerError, outcome.CodeException, "the export's stored request cannot be read"))
		return
	}
	if job.Attempts > h.cfg.MaxAttempts {
		// Never a manifest that silently lacks data: a job that keeps being
		// interrupted fails and says so.
		h.fail(ctx, job, outcome.Newf(http.StatusInternalServerError, outcome.CodeException,
			"the export was interrupted %d times (server restarts or crashes) and was given up; start it again", job.Attempts-1))
		return
	}
	if job.Attempts > 1 {
		h.cfg.Logger.Info("bulk export resumed", "job", job.ID, "attempt", job.Attempts)
	}
	x := &exporter{h: h, job: job, sp: sp}
	x.renewed = h.now()
	res, err := x.run(ctx)
	switch {
	case err == nil:
		body, _ := json.Marshal(res)
		job.State, job.Result, job.Progress = store.JobDone, body, "done"
		job.Expires = h.now().Add(h.cfg.Expiry)
		if err := h.st.UpdateJob(ctx, job); err != nil {
			h.cfg.Logger.Info("bulk export not finished", "job", job.ID, "reason", err.Error())
			return
		}
		h.cfg.Logger.Info("bulk export done", "job", job.ID, "files", len(res.Output), "resources", x.total.Load())
	case errors.Is(err, errCancelled), errors.Is(err, store.ErrNotFound):
		// DeleteJob removed the job and its chunks; a PutChunk racing it
		// was refused (jobs.go in the backend), so nothing is left.
		h.cfg.Logger.Info("bulk export cancelled", "job", job.ID)
	case errors.Is(err, errLostLease), errors.Is(err, store.ErrVersionConflict):
		h.cfg.Logger.Warn("bulk export taken over by another worker", "job", job.ID)
	case ctx.Err() != nil:
		// Close: hand the job back so that the next start resumes it at
		// once rather than after the lease.
		job.State, job.LeaseUntil, job.Progress = store.JobQueued, time.Time{}, "queued (server restarting)"
		if err := h.st.UpdateJob(context.Background(), job); err != nil {
			h.cfg.Logger.Warn("bulk export not handed back", "job", job.ID, "reason", err.Error())
		}
	default:
		// A FHIR error (a _typeFilter the store cannot answer) is the
		// client's to read; anything else is logged and told as a 500
		// without its internals.
		var e *outcome.Error
		if !errors.As(err, &e) {
			h.cfg.Logger.Error("bulk export failed", "job", job.ID, "error", err)
			e = outcome.New(http.StatusInternalServerError, outcome.CodeException, "the export failed on the server; start it again")
		}
		h.cfg.Logger.Info("bulk export failed", "job", job.ID, "outcome", e.LogString())
		h.fail(ctx, job, e)
	}
}

// fail ends a job with e as the answer to every later poll (E-ST-03).
func (h *Handler) fail(ctx context.Context, job store.Job, e *outcome.Error) {
	body, _ := json.Marshal(result{Status: e.Status, Issues: e.Issues})
	job.State, job.Result, job.Progress = store.JobFailed, body, "failed"
	job.Expires = h.now().Add(h.cfg.Expiry)
	_ = h.st.DeleteChunks(ctx, job.ID, job.Owner)
	if err := h.st.UpdateJob(ctx, job); err != nil {
		h.cfg.Logger.Warn("bulk export failure not recorded", "job", job.ID, "reason", err.Error())
	}
}

// sweep removes finished jobs past their expiry, with their files, unless
// this process is serving one of their files right now (E-FI-06).
func (h *Handler) sweep(ctx context.Context) {
	jobs, err := h.st.Jobs(ctx, kind)
	if err != nil {
		return
	}
	now := h.now()
	for _, j := range jobs {
		if j.Expires.IsZero() || j.Expires.After(now) || (j.State != store.JobDone && j.State != store.JobFailed) {
			continue
		}
		h.mu.Lock()
		busy := h.reading[j.ID] > 0
		h.mu.Unlock()
		if busy {
			continue
		}
		_ = h.st.DeleteRecord(ctx, pollKind, j.ID) // expires anyway
		if err := h.st.DeleteJob(ctx, j.ID); err == nil {
			h.cfg.Logger.Info("bulk export expired", "job", j.ID)
		}
	}
}
