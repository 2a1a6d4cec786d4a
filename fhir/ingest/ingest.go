// Package ingest loads FHIR data files into a store at volume (`kiln
// import`): transaction, batch and collection Bundles, single resources,
// and NDJSON (.ndjson, .ndjson.gz), several units of work in parallel.
//
// Loading is idempotent, so it is also resumable: every resource gets a
// stable id — the id it carries, else the uuid of a urn:uuid fullUrl, else
// the id of a RESTful fullUrl, else a hash of its content — and is written
// only when the stored version differs from it. Running the same input
// twice writes nothing the second time; re-running after a crash writes
// exactly what the crash left out. References to urn:uuid fullUrls are
// rewritten to Type/id with fhir/bundle, as a transaction would.
//
// A unit of work is one Bundle (its entries are committed in one
// store.Commit: a transaction Bundle loads completely or not at all) or a
// run of NDJSON lines. Resources are validated with fhir/resource; a
// resource that fails is rejected with its reason (and, in a transaction
// Bundle, so is the whole Bundle); the others load.
package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-fhir/kiln/fhir/bundle"
	"github.com/kiln-fhir/kiln/fhir/jsonvalue"
	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Options configure a load.
type Options struct {
	// Workers is the number of units loaded at once (≤ 0: 4).
	Workers int
	// Registry extracts the search index entries (nil: search.Default()).
	Registry *search.Registry
	// Progress receives a progress line about twice a second (nil: none).
	Progress io.Writer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Summary is what a load did.
type Summary struct {
	Files int
	// Created and Updated count the resources written; Unchanged those
	// already stored as they are in the input.
	Created, Updated, Unchanged int
	// Rejected counts the resources not loaded; Reasons groups them by
	// reason (issue code and element, no data from the resource), and
	// Examples gives where the first of each was (file and entry or line).
	Rejected int
	Reasons  map[string]int
	Examples map[string]string
	Elapsed  time.Duration
}

// Loaded is Created + Updated + Unchanged.
func (s Summary) Loaded() int { return s.Created + s.Updated + s.Unchanged }

// Store is what a load needs.
type Store interface {
	store.Resources
}

// piecewise is implemented by a Store whose Commit may apply some of its
// changes and then fail (cmd/kiln's for MongoDB without transactions):
// such a store is read before every write, so that a refused create
// leaves nothing behind that the summary would count as unchanged.
type piecewise interface{ CommitsPiecewise() bool }

// ndjsonRun is how many NDJSON lines make one unit (one commit).
const ndjsonRun = 500

// item is one resource of a unit.
type item struct {
	where   string // file and entry or line, for reasons
	fullURL string
	raw     json.RawMessage
	val     any // raw decoded (bundle.Decode), once identified
	typ, id string
}

// unit is one commit's worth of resources.
type unit struct {
	items  []item
	atomic bool  // a transaction Bundle: one rejected, all rejected
	bytes  int64 // input bytes it accounts for, for progress
}

// Run loads every file of paths (directories are walked for *.json,
// *.ndjson and *.ndjson.gz) into st.
func Run(ctx context.Context, st Store, paths []string, opts Options) (Summary, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Registry == nil {
		opts.Registry = search.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	files, total, err := listFiles(paths)
	if err != nil {
		return Summary{}, err
	}
	l := &loader{st: st, opts: opts, sum: Summary{Files: len(files), Reasons: map[string]int{}, Examples: map[string]string{}}, total: total}
	start := time.Now()

	units := make(chan unit, opts.Workers*2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, opts.Workers+1)
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range units {
				if err := l.load(ctx, u); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
	stop := l.progress(start)
	go func() {
		defer close(units)
		for _, f := range files {
			if err := readFile(ctx, f, units); err != nil {
				errc <- err
				cancel()
				return
			}
		}
	}()
	wg.Wait()
	stop()
	l.sum.Elapsed = time.Since(start)
	select {
	case err := <-errc:
		return l.sum, err
	default:
	}
	return l.sum, ctx.Err()
}

type loader struct {
	st    Store
	opts  Options
	mu    sync.Mutex // guards sum
	sum   Summary
	total int64
	done  atomic.Int64 // input bytes loaded
	count atomic.Int64 // resources handled
}

func (l *loader) reject(where string, n int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sum.Rejected += n
	r := reason(err)
	if l.sum.Reasons[r] == 0 {
		l.sum.Examples[r] = where
	}
	l.sum.Reasons[r] += n
}

// reason is err without diagnostics (which may echo resource data): the
// issue codes and the elements they concern.
func reason(err error) string {
	var oe *outcome.Error
	if !errors.As(err, &oe) {
		return err.Error()
	}
	is := oe.Issues[0]
	r := is.Code
	if len(is.Expression) > 0 {
		r += " at " + is.Expression[len(is.Expression)-1]
	}
	return r
}

// load writes one unit: its resources that differ from what is stored, in
// one commit, retried when a concurrent unit wrote one of them first.
func (l *loader) load(ctx context.Context, u unit) error {
	defer func() {
		l.done.Add(u.bytes)
		l.count.Add(int64(len(u.items)))
	}()
	ids := map[string]string{} // fullUrl → Type/id
	seen := map[string]bool{}
	parsed := make([]*resource.Resource, len(u.items))
	ok := make([]bool, len(u.items))
	for i := range u.items {
		it := &u.items[i]
		// Decoded once: identity, reference rewriting, the canonical JSON
		// and index extraction all read this value.
		val, err := bundle.Decode(it.raw)
		var typ, id string
		if err == nil {
			typ, id, err = identity(it.raw, val, it.fullURL)
		} else {
			err = outcome.New(400, outcome.CodeStructure, "not a JSON resource")
		}
		if err == nil && seen[typ+"/"+id] {
			err = outcome.New(400, outcome.CodeDuplicate, "the same resource twice in one bundle or run of lines", typ+".id")
		}
		if err != nil {
			if err := l.unitError(u, i, err); err != nil || u.atomic {
				return err
			}
			continue
		}
		it.typ, it.id, it.val, ok[i] = typ, id, val, true
		seen[typ+"/"+id] = true
		if it.fullURL != "" {
			ids[it.fullURL] = typ + "/" + id
		}
	}
	for i, it := range u.items {
		if !ok[i] {
			continue
		}
		body, val, err := bundle.RewriteDecoded(it.raw, it.val, func(v string, k bundle.Kind) (string, error) {
			if target, ok := ids[v]; ok {
				return target, nil
			}
			if k == bundle.Reference && (strings.HasPrefix(v, "urn:uuid:") || strings.HasPrefix(v, "urn:oid:")) {
				return "", outcome.New(400, outcome.CodeNotFound, "reference to a fullUrl the input does not hold", it.typ+".reference")
			}
			return v, nil
		})
		if err == nil {
			parsed[i], err = resource.ParseValue(body, val)
			u.items[i].val = nil // parsed[i] holds it now
		}
		if err == nil && parsed[i].Type != it.typ {
			err = outcome.New(400, outcome.CodeInvalid, "resourceType changed", "resourceType")
		}
		if err != nil {
			if err := l.unitError(u, i, err); err != nil || u.atomic {
				return err
			}
			parsed[i] = nil
		}
	}
	// First as if every resource were new, without reading the store: a
	// Change of version 1 is a create whose precondition is that the
	// resource does not exist at all (store.Change), so the commit fails
	// if any does, and the unit is then compared resource by resource.
	// Most imports load new data; one read per resource was 2% of their
	// CPU (issue 4). A re-run pays one refused commit per unit.
	if pw, ok := l.st.(piecewise); !ok || !pw.CommitsPiecewise() {
		if done, err := l.create(ctx, u, parsed); done || err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		var changes []store.Change
		created, updated, unchanged := 0, 0, 0
		for i, p := range parsed {
			if p == nil {
				continue
			}
			ch, state, err := l.change(ctx, p, u.items[i].id)
			if err != nil {
				if err := l.unitError(u, i, err); err != nil || u.atomic {
					return err
				}
				continue
			}
			switch state {
			case stateCreated:
				created++
				changes = append(changes, ch)
			case stateUpdated:
				updated++
				changes = append(changes, ch)
			default:
				unchanged++
			}
		}
		err := l.st.Commit(ctx, changes...)
		if errors.Is(err, store.ErrVersionConflict) && attempt < 3 {
			continue // another unit wrote one of these: compare again
		}
		if err != nil {
			return fmt.Errorf("ingest: commit: %w", err)
		}
		l.mu.Lock()
		l.sum.Created += created
		l.sum.Updated += updated
		l.sum.Unchanged += unchanged
		l.mu.Unlock()
		return nil
	}
}

// create commits every parsed resource of u as a new one; done is false,
// with nothing written, when one of them is stored already.
func (l *loader) create(ctx context.Context, u unit, parsed []*resource.Resource) (done bool, err error) {
	changes := make([]store.Change, 0, len(parsed))
	for i, p := range parsed {
		if p == nil {
			continue
		}
		ch, err := l.write(p, u.items[i].id, 1)
		if err != nil {
			if err := l.unitError(u, i, err); err != nil || u.atomic {
				return true, err
			}
			parsed[i] = nil
			continue
		}
		changes = append(changes, ch)
	}
	err = l.st.Commit(ctx, changes...)
	if errors.Is(err, store.ErrVersionConflict) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("ingest: commit: %w", err)
	}
	l.mu.Lock()
	l.sum.Created += len(changes)
	l.mu.Unlock()
	return true, nil
}

// unitError rejects item i (all of an atomic unit); it returns an error
// only for failures of the store, which stop the load.
func (l *loader) unitError(u unit, i int, err error) error {
	var oe *outcome.Error
	if !errors.As(err, &oe) {
		return err
	}
	if u.atomic {
		l.reject(u.items[i].where, len(u.items), err)
		return nil
	}
	l.reject(u.items[i].where, 1, err)
	return nil
}

type state int

const (
	stateUnchanged state = iota
	stateCreated
	stateUpdated
)

// change compares p with the stored typ/id and returns the change that
// writes it, unless it is stored as it is.
func (l *loader) change(ctx context.Context, p *resource.Resource, id string) (store.Change, state, error) {
	cur, err := l.st.Read(ctx, p.Type, id)
	gone := errors.Is(err, store.ErrGone)
	if err != nil && !gone && !errors.Is(err, store.ErrNotFound) {
		return store.Change{}, 0, err
	}
	if err == nil {
		// Stamped like the stored version, an identical resource gives the
		// stored bytes.
		same, err := p.Stamp(id, cur.Version, cur.LastUpdated)
		if err != nil {
			return store.Change{}, 0, err
		}
		if bytes.Equal(same, cur.Body) {
			return store.Change{}, stateUnchanged, nil
		}
	}
	ch, err := l.write(p, id, cur.Version+1)
	if err != nil {
		return store.Change{}, 0, err
	}
	st := stateUpdated
	if cur.Version == 0 || gone {
		st = stateCreated
	}
	return ch, st, nil
}

// write returns the change that stores p as version of typ/id.
func (l *loader) write(p *resource.Resource, id string, version int64) (store.Change, error) {
	now := l.opts.Now().UTC().Truncate(time.Microsecond)
	body, err := p.Stamp(id, version, now)
	if err != nil {
		return store.Change{}, err
	}
	var index []search.Entry
	if v := p.Decoded(); v != nil {
		index, err = l.opts.Registry.ExtractValue(p.Type, v)
	} else {
		index, err = l.opts.Registry.Extract(p.Type, body)
	}
	if err != nil {
		return store.Change{}, outcome.New(422, outcome.CodeProcessing, "the resource could not be indexed")
	}
	// PUT: the id is the client's (update as create), as history shows it.
	return store.Change{Type: p.Type, ID: id, Version: version, LastUpdated: now, Method: store.MethodPut, Body: body, Index: index}, nil
}

// identity is the stable type and id of a resource (see the package doc).
func identity(raw json.RawMessage, val any, fullURL string) (string, string, error) {
	obj, _ := val.(map[string]any)
	var head struct{ ResourceType, ID string }
	var ok bool
	if head.ResourceType, ok = obj["resourceType"].(string); !ok || head.ResourceType == "" {
		return "", "", outcome.New(400, outcome.CodeStructure, "not a JSON resource")
	}
	if id, has := obj["id"]; has {
		if head.ID, ok = id.(string); !ok {
			return "", "", outcome.New(400, outcome.CodeStructure, "not a JSON resource")
		}
	}
	if !resource.IsType(head.ResourceType) {
		return "", "", outcome.New(400, outcome.CodeNotSupported, "unknown resource type", "resourceType")
	}
	switch {
	case head.ID != "":
		if !resource.ValidID(head.ID) {
			return "", "", outcome.New(400, outcome.CodeValue, "invalid id", head.ResourceType+".id")
		}
		return head.ResourceType, head.ID, nil
	case strings.HasPrefix(fullURL, "urn:uuid:") && resource.ValidID(fullURL[len("urn:uuid:"):]):
		return head.ResourceType, fullURL[len("urn:uuid:"):], nil
	}
	if base, ok := bundle.Base(fullURL); ok {
		if id := strings.SplitN(fullURL[len(base)+1:], "/", 3)[1]; resource.ValidID(id) {
			return head.ResourceType, id, nil
		}
	}
	sum := sha256.Sum256(raw)
	return head.ResourceType, hex.EncodeToString(sum[:16]), nil
}

// listFiles expands directories and sums the sizes, for the ETA.
func listFiles(paths []string) ([]string, int64, error) {
	var files []string
	var total int64
	add := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		files = append(files, p)
		total += fi.Size()
		return nil
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, 0, err
		}
		if !fi.IsDir() {
			if err := add(p); err != nil {
				return nil, 0, err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if n := d.Name(); strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".ndjson") || strings.HasSuffix(n, ".ndjson.gz") {
				return add(path)
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	if len(files) == 0 {
		return nil, 0, errors.New("ingest: no .json, .ndjson or .ndjson.gz files")
	}
	slices.Sort(files)
	return files, total, nil
}

// countingReader counts the bytes read from a file, compressed or not.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readFile turns one file into units.
func readFile(ctx context.Context, path string, units chan<- unit) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cr := &countingReader{r: f}
	name := filepath.Base(path)
	send := func(u unit) error {
		select {
		case units <- u:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if strings.HasSuffix(path, ".json") {
		data, err := io.ReadAll(cr)
		if err != nil {
			return err
		}
		u, err := bundleUnit(name, data)
		if err != nil {
			return err
		}
		u.bytes = cr.n
		return send(u)
	}
	var r io.Reader = cr
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(cr)
		if err != nil {
			return fmt.Errorf("ingest: %s: %w", name, err)
		}
		defer gz.Close()
		r = gz
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var u unit
	var sent int64
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		u.items = append(u.items, item{where: fmt.Sprintf("%s:%d", name, line), raw: bytes.Clone(b)})
		if len(u.items) == ndjsonRun {
			u.bytes, sent = cr.n-sent, cr.n
			if err := send(u); err != nil {
				return err
			}
			u = unit{}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ingest: %s: %w", name, err)
	}
	u.bytes = cr.n - sent
	return send(u)
}

// bundleUnit reads a JSON file: a Bundle's entries, or one resource. The
// file is split with fhir/jsonvalue, which checks it is JSON and hands
// over each entry's resource as bytes without decoding it (encoding/json
// into a struct of json.RawMessage scanned every byte twice: 4% of an
// import's CPU, issue 4).
func bundleUnit(name string, data []byte) (unit, error) {
	var typ, rt string
	var entries []byte
	err := jsonvalue.Members(data, func(k string, v []byte) (err error) {
		switch k {
		case "resourceType":
			rt, err = jsonvalue.String(v)
		case "type":
			typ, err = jsonvalue.String(v)
		case "entry":
			entries = v
		}
		return err
	})
	if err != nil {
		return unit{}, fmt.Errorf("ingest: %s is not a JSON resource: %w", name, err)
	}
	if rt != "Bundle" || (typ != "transaction" && typ != "batch" && typ != "collection") {
		return unit{items: []item{{where: name, raw: data}}}, nil
	}
	u := unit{atomic: typ == "transaction"}
	if entries == nil || string(entries) == "null" {
		return u, nil
	}
	err = jsonvalue.Elements(entries, func(i int, e []byte) error {
		if string(e) == "null" {
			return nil
		}
		var fullURL, method string
		var res []byte
		err := jsonvalue.Members(e, func(k string, v []byte) (err error) {
			switch k {
			case "fullUrl":
				fullURL, err = jsonvalue.String(v)
			case "resource":
				res = v
			case "request":
				if string(v) != "null" {
					err = jsonvalue.Members(v, func(k string, v []byte) (err error) {
						if k == "method" {
							method, err = jsonvalue.String(v)
						}
						return err
					})
				}
			}
			return err
		})
		switch {
		case err != nil:
			return fmt.Errorf("entry %d: %w", i, err)
		case len(res) == 0:
			// GET and DELETE entries have nothing to load.
		case method != "" && method != "POST" && method != "PUT":
		default:
			u.items = append(u.items, item{where: fmt.Sprintf("%s entry %d", name, i), fullURL: fullURL, raw: res})
		}
		return nil
	})
	if err != nil {
		return unit{}, fmt.Errorf("ingest: %s is not a JSON Bundle: %w", name, err)
	}
	return u, nil
}

// progress prints resources/s and the ETA until the returned stop.
func (l *loader) progress(start time.Time) func() {
	if l.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				l.printProgress(start, "\n")
				return
			case <-tick.C:
				l.printProgress(start, "")
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (l *loader) printProgress(start time.Time, end string) {
	el := time.Since(start).Seconds()
	n, b := l.count.Load(), l.done.Load()
	rate := float64(n) / max(el, 1e-3)
	eta := "?"
	if b > 0 && l.total > b {
		eta = time.Duration(el * float64(l.total-b) / float64(b) * float64(time.Second)).Round(time.Second).String()
	} else if b >= l.total {
		eta = "0s"
	}
	pct := 100 * float64(b) / float64(max(l.total, 1))
	fmt.Fprintf(l.opts.Progress, "\r%5.1f%%  %d resources  %.0f/s  ETA %s   %s", pct, n, rate, eta, end)
}
