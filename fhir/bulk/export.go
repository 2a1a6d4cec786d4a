package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// chunkSize is how much of a file is buffered before it is written to the
// store as one chunk: the memory one running export holds for its output.
const chunkSize = 1 << 20

// exporter runs one job.
type exporter struct {
	h   *Handler
	job store.Job
	sp  spec

	total atomic.Int64 // resources written, for X-Progress and the log
	done  atomic.Int64 // types finished, for X-Progress

	res result

	puts      chan chunk  // to the chunk writer (startPuts)
	free      chan []byte // chunk buffers the chunk writer is done with
	putDone   chan error
	putErr    error
	putFailed atomic.Bool

	// mu guards what the lanes (lanes) share: the lease and progress, the
	// deletions and their writer, and the associated Provenance.
	mu      sync.Mutex
	renewed time.Time
	del     *fileWriter // deleted: NDJSON Bundles
	deleted []string    // deletions not yet written (at most maxDeletedEntries)
	// provenance holds the ids of the Provenance associated with the
	// exported resources (includeAssociatedData, provenance.go).
	provenance map[string]bool
}

func (x *exporter) run(ctx context.Context) (res result, err error) {
	x.startPuts(ctx)
	defer func() {
		// Every chunk is stored before the job can be recorded done. A
		// lane stopped by a failed store gives the store's error.
		if perr := x.drainPuts(); perr != nil && (err == nil || errors.Is(err, errPutFailed)) {
			res, err = result{}, perr
		}
	}()
	x.res = result{Output: []file{}, Error: []file{}, Deleted: []file{}}
	x.del = x.writer(&x.res.Deleted, true)
	// A worker taking over starts the files afresh; the snapshot
	// (transactionTime) is the job's, so the result is the same.
	if err := x.h.st.DeleteChunks(ctx, x.job.ID, x.job.Owner); err != nil {
		return result{}, err
	}
	if wait := time.Until(x.sp.TransactionTime.Add(x.h.cfg.Settle)); wait > 0 {
		select {
		case <-ctx.Done():
			return result{}, ctx.Err()
		case <-time.After(wait):
		}
	}
	if x.sp.Compartment && x.sp.Patients != nil && len(x.sp.Patients) == 0 {
		x.sp.Types, x.sp.Binaries = nil, false // no patient in scope: nothing to export
	}
	x.provenance = map[string]bool{}
	// Each type's files are its own list, joined in the order of the
	// types whatever order the lanes finish in. The patients' Binaries
	// are written as DocumentReferences after those (binary.go).
	types := x.sp.Types
	if x.sp.Binaries && !slices.Contains(types, "DocumentReference") {
		types = append(slices.Clip(types), "DocumentReference")
	}
	files := make([][]file, len(types))
	if err := x.lanes(ctx, types, func(ctx context.Context, i int) error {
		out := x.output(&files[i])
		if i < len(x.sp.Types) {
			if err := x.exportType(ctx, types[i], out); err != nil {
				return err
			}
		}
		if types[i] == "DocumentReference" && x.sp.Binaries {
			if err := x.exportBinaries(ctx, out); err != nil {
				return err
			}
		}
		x.done.Add(1)
		return nil
	}); err != nil {
		return result{}, err
	}
	for _, f := range files {
		x.res.Output = append(x.res.Output, f...)
	}
	if err := x.exportProvenance(ctx, x.output(&x.res.Output)); err != nil {
		return result{}, err
	}
	if err := x.writeDeleted(ctx); err != nil {
		return result{}, err
	}
	if err := x.del.close(ctx); err != nil {
		return result{}, err
	}
	// E-PA-08: one OperationOutcome per ignored parameter, in error.
	errs := x.writer(&x.res.Error, false)
	for _, is := range x.sp.Ignored {
		if err := errs.line(ctx, "OperationOutcome", outcome.Resource([]outcome.Issue{is})); err != nil {
			return result{}, err
		}
	}
	if err := errs.close(ctx); err != nil {
		return result{}, err
	}
	return x.res, nil
}

// output returns a writer of resource files into list, in the job's
// format.
func (x *exporter) output(list *[]file) output {
	if x.sp.Format == formatParquet {
		return x.parquetWriter(list)
	}
	return x.writer(list, false)
}

// exportType writes one type's resources as of transactionTime to out.
func (x *exporter) exportType(ctx context.Context, typ string, out output) error {
	filters, err := x.filters(typ)
	if err != nil {
		return err
	}
	var comp *compartment
	if x.sp.Compartment && !x.sp.Record {
		if comp, err = x.h.compartmentOf(typ); err != nil {
			return err
		}
	}
	q := store.ScanQuery{Type: typ, At: x.sp.TransactionTime, Since: x.sp.Since,
		Deleted: !x.sp.Since.IsZero(), Count: x.h.cfg.pageSize}
	pages, stop := x.scan(ctx, q)
	defer stop()
	for sc := range pages {
		page, err := sc.page, sc.err
		if err != nil {
			return err
		}
		var matched map[string]bool
		if filters != nil {
			if matched, err = x.match(ctx, typ, filters, page.Resources); err != nil {
				return err
			}
		}
		var exported []string // ids, for includeAssociatedData
		for _, r := range page.Resources {
			in, err := x.inScope(ctx, comp, r)
			if err != nil {
				return err
			}
			switch {
			case !in:
			case r.Deleted():
				// E-ST-08: listed in deleted, never also in output.
				if err := x.deleteEntry(ctx, r.Type+"/"+r.ID); err != nil {
					return err
				}
			case matched != nil && !matched[r.ID]:
			default:
				if err := x.write(ctx, out, typ, r); err != nil {
					return err
				}
				if x.sp.Provenance != "" {
					exported = append(exported, r.ID)
				}
			}
		}
		if err := x.associate(ctx, typ, exported); err != nil {
			return err
		}
		if err := x.renew(ctx, typ); err != nil {
			return err
		}
		if x.h.cfg.pageHook != nil {
			x.h.cfg.pageHook(x.job.ID, typ)
		}
	}
	return out.close(ctx)
}

// scanned is one page of a scan, or why there is none.
type scanned struct {
	page store.ScanPage
	err  error
}

// scan reads q's pages on a goroutine of its own, one page ahead of the
// caller: the store reads the next page while this one is written out
// (the scan is most of an export's time; BenchmarkExport). The channel
// closes after the last page or an error; stop ends the scan early.
func (x *exporter) scan(ctx context.Context, q store.ScanQuery) (<-chan scanned, func()) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan scanned, 1)
	go func() {
		defer close(out)
		for {
			page, err := x.h.st.Scan(ctx, q)
			select {
			case out <- scanned{page, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || page.Next == "" {
				return
			}
			q.After = page.Next
		}
	}()
	return out, cancel
}

// write writes one exported resource to out, with only the elements
// _elements names.
func (x *exporter) write(ctx context.Context, out output, typ string, r store.Resource) error {
	body := r.Body
	if len(x.sp.Elements) > 0 {
		var err error
		if body, err = resource.Elements(body, x.sp.Elements); err != nil {
			return err
		}
	}
	if err := out.line(ctx, typ, body); err != nil {
		return err
	}
	x.total.Add(1)
	return nil
}

// inScope reports whether r belongs to the export's patients: to their
// compartments (comp), or with Record to their records. A deleted
// resource is judged by the version before its delete.
func (x *exporter) inScope(ctx context.Context, comp *compartment, r store.Resource) (bool, error) {
	if comp == nil && !x.sp.Record {
		return true, nil
	}
	body := r.Body
	if r.Deleted() {
		prev, err := x.h.st.VRead(ctx, r.Type, r.ID, r.Version-1)
		if err != nil {
			if store.IsAnswer(err) {
				return false, nil
			}
			return false, err
		}
		body = prev.Body
	}
	var ids []string
	var err error
	if x.sp.Record {
		// What a portal type goes through (a PaymentNotice's Invoice) is
		// read as it is now, not as of transactionTime.
		ids, err = x.h.cfg.Registry.RecordPatients(ctx, r.Type, body, x.sp.Base, x.readCurrent)
	} else {
		ids, err = comp.patients(r.ID, body)
	}
	if err != nil {
		return false, err
	}
	if x.sp.Patients == nil {
		return len(ids) > 0, nil
	}
	for _, id := range ids {
		if _, ok := slices.BinarySearch(x.sp.Patients, id); ok {
			return true, nil
		}
	}
	return false, nil
}

// readCurrent is search.ReadFunc on the store.
func (x *exporter) readCurrent(ctx context.Context, typ, id string) ([]byte, bool, error) {
	res, err := x.h.st.Read(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return res.Body, true, nil
}

// filterClauses parses one _typeFilter query on typ (E-PA-07).
func (h *Handler) filterClauses(typ, query string) ([]search.Clause, error) {
	vals, err := url.ParseQuery(query)
	if err != nil {
		return nil, outcome.Newf(http.StatusBadRequest, outcome.CodeValue, "_typeFilter %s?%s is not a query string", typ, query)
	}
	for k := range vals {
		name, _, _ := strings.Cut(k, ":")
		if slices.Contains(resultParams, name) {
			return nil, outcome.Newf(http.StatusBadRequest, outcome.CodeNotSupported,
				"_typeFilter may not use the result parameter %s", name)
		}
	}
	q, _, err := h.cfg.Registry.Parse([]string{typ}, vals, search.ParseOptions{Strict: true})
	if err != nil {
		return nil, err
	}
	return q.Filter, nil
}

// filters returns typ's _typeFilter queries as clauses, nil when the type
// is not filtered (a type in _type without a filter is whole).
func (x *exporter) filters(typ string) ([][]search.Clause, error) {
	var out [][]search.Clause
	for _, q := range x.sp.TypeFilter[typ] {
		cl, err := x.h.filterClauses(typ, q)
		if err != nil {
			return nil, err
		}
		out = append(out, cl)
	}
	return out, nil
}

// match returns the ids of page that match any of the filters. Searches
// run on the index, which holds current versions: a resource changed after
// transactionTime is matched on its current version (documented in the
// README). Each search is bounded to the page's ids.
func (x *exporter) match(ctx context.Context, typ string, filters [][]search.Clause, page []store.Resource) (map[string]bool, error) {
	matched := map[string]bool{}
	if len(page) == 0 {
		return matched, nil
	}
	ids := search.Clause{Param: "_id", Type: search.Token}
	for _, r := range page {
		if !r.Deleted() {
			ids.Values = append(ids.Values, search.Value{Raw: r.ID, Code: r.ID})
		}
	}
	if len(ids.Values) == 0 {
		return matched, nil
	}
	for _, f := range filters {
		q := &search.Query{Types: []string{typ}, Filter: append(slices.Clip(f), ids), Count: len(ids.Values), Total: search.TotalNone}
		for {
			p, err := x.h.st.Search(ctx, q)
			if err != nil {
				if errors.Is(err, store.ErrUnsupported) {
					return nil, outcome.Newf(http.StatusBadRequest, outcome.CodeNotSupported, "_typeFilter on %s cannot be answered: %v", typ, err)
				}
				return nil, err
			}
			for _, m := range p.Matches {
				matched[m.ID] = true
			}
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
	}
	return matched, nil
}

// fileWriter writes NDJSON files into one list of the result (output,
// error or deleted), one type per file, a new file when the type changes
// or the file would pass MaxFileSize. It buffers one chunk at most.
type fileWriter struct {
	x       *exporter
	list    *[]file
	deleted bool // names files deleted-n.ndjson
	cur     int  // index of the open file in *list; -1 when none
	buf     []byte
	chunks  int   // chunks of the open file written
	size    int64 // bytes of the open file
}

// nextFileNumber is the number the next file of typ in list takes: files
// of a type are numbered from 1 in the order they are opened.
func nextFileNumber(list []file, typ string) int {
	n := 1
	for _, f := range list {
		if f.Type == typ {
			n++
		}
	}
	return n
}

func (x *exporter) writer(list *[]file, deleted bool) *fileWriter {
	return &fileWriter{x: x, list: list, deleted: deleted, cur: -1}
}

func (w *fileWriter) line(ctx context.Context, typ string, body []byte) error {
	if w.cur >= 0 && ((*w.list)[w.cur].Type != typ || w.size+int64(len(body))+1 > w.x.h.cfg.MaxFileSize) {
		if err := w.close(ctx); err != nil {
			return err
		}
	}
	if w.cur < 0 {
		n := nextFileNumber(*w.list, typ)
		name := fmt.Sprintf("%s-%d.ndjson", typ, n)
		if w.deleted {
			name = fmt.Sprintf("deleted-%d.ndjson", n)
		}
		*w.list = append(*w.list, file{Type: typ, Name: name})
		w.cur = len(*w.list) - 1
		w.buf, w.chunks, w.size = w.buf[:0], 0, 0
	}
	w.buf = append(append(w.buf, body...), '\n')
	w.size += int64(len(body)) + 1
	(*w.list)[w.cur].Count++
	if len(w.buf) >= chunkSize {
		return w.flush(ctx)
	}
	return nil
}

// flush hands the buffer to the chunk writer and starts a new one.
func (w *fileWriter) flush(ctx context.Context) error {
	if len(w.buf) == 0 {
		return nil
	}
	if err := w.x.put(ctx, chunk{file: (*w.list)[w.cur].Name, n: w.chunks, data: w.buf}); err != nil {
		return err
	}
	w.chunks++
	w.buf = w.x.buffer()
	return nil
}

// buffer returns an empty chunk buffer, a used one when there is one.
func (x *exporter) buffer() []byte {
	select {
	case b := <-x.free:
		return b
	default:
		return make([]byte, 0, chunkSize+64<<10)
	}
}

// chunk is one chunk on its way to the store.
type chunk struct {
	file string
	n    int
	data []byte
}

// startPuts starts the goroutine that stores chunks, so that reading the
// next page overlaps writing the last chunk (on SQLite the two wait on
// different things: the read on pages, the write on the WAL). At most
// putQueue chunks wait, so a running export holds a few MiB at most.
func (x *exporter) startPuts(ctx context.Context) {
	puts, done := make(chan chunk, putQueue), make(chan error, 1)
	x.puts, x.putDone, x.free = puts, done, make(chan []byte, putQueue+1)
	go func() {
		var err error
		for c := range puts {
			if err == nil {
				packed := packChunk(c.file, c.data)
				err = x.h.st.PutChunk(ctx, x.job.ID, x.job.Owner, c.file, c.n, packed)
				if err != nil {
					x.putFailed.Store(true)
				}
				if &packed[0] != &c.data[0] {
					// Compressed: the buffer is free again (the store may
					// keep what it was given, never what it was not).
					select {
					case x.free <- c.data[:0]:
					default:
					}
				}
			}
		}
		done <- err
	}()
}

const putQueue = 2

// errPutFailed stops the lanes after the chunk writer failed; run returns
// the writer's own error (drainPuts).
var errPutFailed = errors.New("bulk: storing a chunk failed")

func (x *exporter) put(ctx context.Context, c chunk) error {
	if x.putFailed.Load() {
		return errPutFailed
	}
	select {
	case x.puts <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainPuts waits for every queued chunk and returns the first error;
// run calls it once, after the lanes.
func (x *exporter) drainPuts() error {
	if x.puts == nil {
		return x.putErr
	}
	close(x.puts)
	x.puts = nil
	x.putErr = <-x.putDone
	return x.putErr
}

func (w *fileWriter) close(ctx context.Context) error {
	if w.cur < 0 {
		return nil
	}
	err := w.flush(ctx)
	w.cur = -1
	return err
}

// maxDeletedEntries bounds a deleted Bundle, and the deletions held in
// memory before they are written.
const maxDeletedEntries = 1000

// deleteEntry records a deletion of a _since export; full Bundles are
// written as they fill.
func (x *exporter) deleteEntry(ctx context.Context, ref string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.deleted = append(x.deleted, ref)
	if len(x.deleted) < maxDeletedEntries {
		return nil
	}
	return x.writeDeleted(ctx)
}

// writeDeleted writes the pending deletions as one transaction Bundle of
// DELETE entries (E-ST-08); x.mu is held, or the lanes are done.
func (x *exporter) writeDeleted(ctx context.Context) error {
	if len(x.deleted) == 0 {
		return nil
	}
	type entry struct {
		Request struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
	}
	b := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", Type: "transaction"}
	for _, ref := range x.deleted {
		var e entry
		e.Request.Method, e.Request.URL = "DELETE", ref
		b.Entry = append(b.Entry, e)
	}
	x.deleted = x.deleted[:0]
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return x.del.line(ctx, "Bundle", body)
}

// renew reports progress and renews the lease, at most every Lease/5:
// ErrNotFound means the job was cancelled, ErrVersionConflict that another
// worker took it over.
func (x *exporter) renew(ctx context.Context, typ string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.h.now()
	if now.Sub(x.renewed) < x.h.cfg.Lease/5 {
		return nil
	}
	x.renewed = now
	x.job.LeaseUntil = now.Add(x.h.cfg.Lease)
	x.job.Progress = fmt.Sprintf("%d of %d types, %d resources; exporting %s", x.done.Load(), len(x.sp.Types), x.total.Load(), typ)
	err := x.h.st.UpdateJob(ctx, x.job)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errCancelled
	case errors.Is(err, store.ErrVersionConflict):
		return errLostLease
	}
	return err
}

// lanes runs export(i) for every type i of types, Lanes types at once
// (Config.Lanes). One type is read by one SQL statement after another on
// one goroutine, which keeps one core busy at most: the store's own pace
// (BenchmarkExport's baseline). Several types read at once use the other
// cores; each type writes its own files, so lanes share only the chunk
// writer and what x.mu guards. The first error stops the other lanes
// and is returned.
//
// Types are started largest first as far as can be told without counting
// them: the types that dominate clinical data (largeTypes) before the
// rest, so that the last type to finish is not a large one started late.
func (x *exporter) lanes(ctx context.Context, types []string, export func(ctx context.Context, i int) error) error {
	order := make([]int, len(types))
	for i := range order {
		order[i] = i
	}
	rank := func(i int) int {
		if r := slices.Index(largeTypes, types[i]); r >= 0 {
			return r
		}
		return len(largeTypes)
	}
	slices.SortStableFunc(order, func(a, b int) int { return rank(a) - rank(b) })

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for range min(x.h.cfg.Lanes, len(order)) {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(order) || ctx.Err() != nil {
					return
				}
				if err := export(ctx, order[k]); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	// A lane that saw the context end between two types stops without an
	// error of its own.
	return parent.Err()
}

// largeTypes are the resource types that usually hold most of a clinical
// store's resources and bytes (Synthea's population: Observation half the
// resources, ExplanationOfBenefit and Claim half the bytes), started first.
var largeTypes = []string{"Observation", "ExplanationOfBenefit", "Claim", "Encounter", "DiagnosticReport",
	"DocumentReference", "Immunization", "Procedure", "Condition", "MedicationRequest"}
