package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/store"
)

// manifest is the complete-status body (export.html#response---complete-status).
type manifest struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request"`
	RequiresAccessToken bool           `json:"requiresAccessToken"`
	Output              []manifestFile `json:"output"`
	Error               []manifestFile `json:"error"`
	Deleted             []manifestFile `json:"deleted,omitempty"`
}

type manifestFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count"`
}

// job reads a job for the client of r: 404 when there is none (never was,
// cancelled, expired; E-ST-09), 403 when it is another client's (E-FI-08).
func (h *Handler) job(r *http.Request, id string) (store.Job, spec, error) {
	g, err := h.grant(r)
	if err != nil {
		return store.Job{}, spec{}, err
	}
	j, err := h.st.Job(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Job{}, spec{}, outcome.New(http.StatusNotFound, outcome.CodeNotFound,
			"no such export: it never existed, was cancelled, or its files expired")
	}
	if err != nil {
		return store.Job{}, spec{}, err
	}
	var sp spec
	if err := json.Unmarshal(j.Spec, &sp); err != nil {
		return store.Job{}, spec{}, err
	}
	if sp.Client != g.Client {
		return store.Job{}, spec{}, outcome.New(http.StatusForbidden, outcome.CodeForbidden,
			"this export was started by another client")
	}
	return j, sp, nil
}

// status is GET on the status URL (export.html#bulk-data-status-request).
func (h *Handler) status(w http.ResponseWriter, r *http.Request, id string) error {
	j, sp, err := h.job(r, id)
	if err != nil {
		return err
	}
	switch j.State {
	case store.JobQueued, store.JobRunning:
		if err := h.throttle(r.Context(), id); err != nil {
			return err
		}
		// E-ST-01: 202, X-Progress under 100 characters, Retry-After.
		p := j.Progress
		if len(p) > 99 {
			p = p[:99]
		}
		w.Header().Set("X-Progress", p)
		w.Header().Set("Retry-After", h.retryAfter())
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	var res result
	if err := json.Unmarshal(j.Result, &res); err != nil {
		return err
	}
	if j.State == store.JobFailed {
		return &outcome.Error{Status: res.Status, Issues: res.Issues}
	}
	// File URLs are under the base this poll reached (or the configured
	// one): the process that serves them may not be the one that took the
	// kick-off.
	base := h.base(r)
	m := manifest{TransactionTime: sp.TransactionTime.Format(time.RFC3339Nano), Request: sp.Request,
		RequiresAccessToken: sp.RequiresToken,
		Output:              h.files(base, j.ID, res.Output), Error: h.files(base, j.ID, res.Error)}
	if !sp.Since.IsZero() {
		m.Deleted = h.files(base, j.ID, res.Deleted)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	// E-ST-05: plain application/json, and when the files go.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Expires", j.Expires.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return nil
}

// pollKind is the store.Records kind of the poll marks.
const pollKind = "export-poll"

// throttle answers 429 with Retry-After to a poll of a running export
// that comes less than MinPoll after the previous one
// (export.html#bulk-data-status-request: "the server SHOULD return 429
// Too Many Requests" to a client polling too frequently; E-ST-02). The
// mark of the last poll is a record in the store that expires after
// MinPoll, created only if none is live: one atomic statement, so every
// process serving the store (--mongo-uri) sees the same marks, and two
// polls racing each other let one through. Only running exports are
// throttled: the manifest and a failure are answered whenever asked.
// Status requests are confined to the client that started the export
// (job), so one mark per export is one per client.
func (h *Handler) throttle(ctx context.Context, id string) error {
	if h.cfg.MinPoll <= 0 {
		return nil
	}
	now := h.now()
	err := h.st.InsertRecord(ctx, store.Record{Kind: pollKind, Key: id, Value: []byte{}, Expires: now.Add(h.cfg.MinPoll)})
	if !errors.Is(err, store.ErrVersionConflict) {
		return err
	}
	wait := h.cfg.MinPoll
	if rec, err := h.st.GetRecord(ctx, pollKind, id); err == nil {
		wait = rec.Expires.Sub(now)
	}
	secs := max(1, int((wait+time.Second-1)/time.Second))
	return outcome.Newf(http.StatusTooManyRequests, outcome.CodeTransient,
		"this export was polled again within %v of the last poll; poll at most as often as Retry-After says", h.cfg.MinPoll).
		With("Retry-After", strconv.Itoa(secs))
}

// retryAfter is the Retry-After value in whole seconds, at least 1.
func (h *Handler) retryAfter() string {
	return strconv.Itoa(max(1, int(h.cfg.RetryAfter.Round(time.Second)/time.Second)))
}

func (h *Handler) files(base, id string, fs []file) []manifestFile {
	out := []manifestFile{}
	for _, f := range fs {
		out = append(out, manifestFile{Type: f.Type, URL: base + filePath + id + "/" + f.Name, Count: f.Count})
	}
	return out
}

// cancel is DELETE on the status URL (export.html#bulk-data-delete-request):
// the job and its files are removed at once; a worker running it stops at
// its next write (the store refuses writes to a deleted job).
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, id string) error {
	if _, _, err := h.job(r, id); err != nil {
		return err
	}
	if err := h.st.DeleteJob(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return outcome.New(http.StatusNotFound, outcome.CodeNotFound, "no such export")
		}
		return err
	}
	_ = h.st.DeleteRecord(r.Context(), pollKind, id) // expires anyway
	h.cfg.Logger.Info("bulk export cancel requested", "job", id)
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	w.Write(outcome.Info("export cancelled; its files are deleted"))
	return nil
}

// file streams one output file, chunk by chunk
// (export.html#bulk-data-output-file-request).
func (h *Handler) file(w http.ResponseWriter, r *http.Request, id, name string) error {
	j, _, err := h.job(r, id)
	if err != nil {
		return err
	}
	var res result
	if j.State == store.JobDone {
		if err := json.Unmarshal(j.Result, &res); err != nil {
			return err
		}
	}
	known := false
	for _, f := range append(append(res.Output, res.Error...), res.Deleted...) {
		known = known || f.Name == name
	}
	if !known {
		return outcome.New(http.StatusNotFound, outcome.CodeNotFound, "no such file in this export")
	}
	h.mu.Lock()
	h.reading[id]++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if h.reading[id]--; h.reading[id] == 0 {
			delete(h.reading, id)
		}
		h.mu.Unlock()
	}()
	first, err := h.st.Chunk(r.Context(), id, name, 0)
	if err != nil {
		return err
	}
	ct := "application/fhir+ndjson"
	if strings.HasSuffix(name, ".parquet") {
		ct = parquetMediaType
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	return h.stream(r.Context(), w, id, name, first)
}

// stream writes the chunks from first on. Once the status line is sent an
// error can only cut the response short, which the client sees as a
// truncated body.
func (h *Handler) stream(ctx context.Context, w http.ResponseWriter, id, name string, chunk []byte) error {
	for n := 1; ; n++ {
		data, err := unpackChunk(name, chunk)
		if err != nil {
			h.cfg.Logger.Error("bulk: a stored chunk cannot be decompressed", "job", id, "error", err)
			panic(http.ErrAbortHandler)
		}
		if _, err := w.Write(data); err != nil {
			return nil
		}
		chunk, err = h.st.Chunk(ctx, id, name, n)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			h.cfg.Logger.Error("bulk: reading a file failed mid-stream", "job", id, "error", err)
			panic(http.ErrAbortHandler)
		}
	}
}
