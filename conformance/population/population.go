// Package population builds, and caches between runs, the large embedded
// store the issue 3 and issue 6 benchmarks measure at: the Synthea bundles
// of testdata replicated until at least N resources are stored (1,000,000
// by default), each replica with fresh ids, its dates shifted and its
// family names made distinct, so that searches by patient, name or
// identifier stay as selective as in a real population.
//
// The data goes in through store.Commit in batches of one replica (about
// 1,250 resources), as `kiln import` writes: references to fullUrls
// rewritten to Type/id, every resource validated (resource.Parse),
// stamped (canonical JSON with id and meta) and indexed (search.Extract).
// Parsing is the dearest step (about 1 ms of CPU per resource through
// fhir/ingest, 20 minutes or more for a million on shared cores), and
// replicas differ from their source only in ids, dates and family names,
// whose canonical text is the input's: so each Synthea resource is parsed,
// validated and stamped once, and its replicas are its canonical JSON with
// those values rewritten. Every 64th replica is also parsed, validated and
// stamped from its own rewritten source, and the build fails unless the
// bytes are equal. Every replica is indexed by search.Extract from its own
// bytes. Building still takes minutes, so the data directory is kept (under $KILN_BENCH_CACHE, default
// the system temporary directory) in a directory named after Version and
// N: a changed generator gets a new Version and so rebuilds. A build that
// did not finish leaves no manifest, and the next Open starts it again.
package population

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/bundle"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// Version names the generator's output. Change it whenever what Build
// writes changes, so that cached populations are rebuilt.
const Version = "v2"

// DefaultN is the size the issues' benchmarks ask for.
const DefaultN = 1_000_000

// SyntheaSystem is the identifier system of Synthea's own patient ids
// (the benchmarks' `Patient?identifier=` queries).
const SyntheaSystem = "https://github.com/synthetichealth/synthea"

// Config says what population to open.
type Config struct {
	// N is the least number of resources (≤ 0: $KILN_BENCH_POP_N, else
	// DefaultN).
	N int
	// Synthea is the directory of Synthea bundles to replicate.
	Synthea string
	// Cache is the parent of the cached data directories (empty:
	// $KILN_BENCH_CACHE, else os.TempDir()).
	Cache string
	// Progress receives a progress line per 16 replicas while building
	// (nil: none).
	Progress io.Writer
}

// Patient is one Patient of the population, with what the benchmarks
// search it by.
type Patient struct {
	ID     string `json:"id"`
	Family string `json:"family"`
	// MRN is the value of its SyntheaSystem identifier.
	MRN string `json:"mrn"`
}

// Population is a loaded, closed store and what was measured building it.
type Population struct {
	// Dir is the data directory: `kiln serve --data Dir`; the SQLite file
	// is Dir/kiln.db.
	Dir       string    `json:"-"`
	Version   string    `json:"version"`
	Resources int       `json:"resources"`
	Patients  []Patient `json:"patients"`
	// Shift is the date shift, in days, of each replica (index: replica).
	Shift []int `json:"shift"`
	// Built is when the build finished; LoadSeconds how long loading took
	// (from the first replica to the last commit, before the final
	// checkpoint).
	Built       time.Time `json:"built"`
	LoadSeconds float64   `json:"loadSeconds"`
	// FileBytes is the database file after a final checkpoint;
	// IndexBytes the pages of the search index tables (ix_* and params)
	// by SQLite's dbstat table, or -1 where dbstat is not compiled in.
	FileBytes  int64 `json:"fileBytes"`
	IndexBytes int64 `json:"indexBytes"`
	// Cached reports that Open found the population already built.
	Cached bool `json:"-"`
}

// LoadRate is resources/s while building.
func (p *Population) LoadRate() float64 { return float64(p.Resources) / p.LoadSeconds }

// String is a one-line summary: size, load rate and bytes per resource.
func (p *Population) String() string {
	ix := "index size unknown (no dbstat)"
	if p.IndexBytes >= 0 {
		ix = fmt.Sprintf("%.0f B/resource of it search index (dbstat: ix_* and params pages)", float64(p.IndexBytes)/float64(p.Resources))
	}
	return fmt.Sprintf("%d resources, %d Patients; loaded at %.0f resources/s (%s); file %.0f B/resource, %s",
		p.Resources, len(p.Patients), p.LoadRate(), time.Duration(p.LoadSeconds*float64(time.Second)).Round(time.Second),
		float64(p.FileBytes)/float64(p.Resources), ix)
}

const manifestName = "population.json"

// Open returns the cached population of cfg, building it first when it is
// missing or unfinished.
func Open(ctx context.Context, cfg Config) (*Population, error) {
	if cfg.N <= 0 {
		cfg.N = DefaultN
		if v := os.Getenv("KILN_BENCH_POP_N"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("population: KILN_BENCH_POP_N=%q is not a positive number", v)
			}
			cfg.N = n
		}
	}
	if cfg.Cache == "" {
		cfg.Cache = os.Getenv("KILN_BENCH_CACHE")
		if cfg.Cache == "" {
			cfg.Cache = os.TempDir()
		}
	}
	dir := filepath.Join(cfg.Cache, fmt.Sprintf("kiln-bench-pop-%s-%d", Version, cfg.N))
	if raw, err := os.ReadFile(filepath.Join(dir, manifestName)); err == nil {
		p := &Population{Dir: dir, Cached: true}
		if err := json.Unmarshal(raw, p); err != nil || p.Version != Version {
			return nil, fmt.Errorf("population: %s: unreadable manifest (remove the directory): %v", dir, err)
		}
		return p, nil
	}
	// No manifest: nothing, or a build that did not finish.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p, err := build(ctx, dir, cfg)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return nil, err
	}
	return p, os.Rename(tmp, filepath.Join(dir, manifestName))
}

// verifyEvery: every this many replicas, each resource is also parsed,
// validated and stamped from its own replicated source, and must give the
// bytes the template produced.
const verifyEvery = 64

// source is one resource of the Synthea bundles, references to fullUrls
// rewritten to Type/id as a transaction or `kiln import` rewrites them.
type source struct {
	typ, id string
	// raw is the resource before validation; template its canonical JSON
	// (resource.Parse, then Stamp as version 1) with meta.lastUpdated
	// replaced by lastUpdatedMark, which no replica rewrite touches.
	raw, template string
}

const lastUpdatedMark = "@lastUpdated@"

func build(ctx context.Context, dir string, cfg Config) (*Population, error) {
	bundles, err := synthea.Load(cfg.Synthea)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	var (
		sources  []source
		patients []Patient // each bundle's Patient as the bundle has it
	)
	for _, b := range bundles {
		ids := map[string]string{} // fullUrl → Type/id
		for _, e := range b.Entries {
			ids[e.FullURL] = e.Type + "/" + strings.TrimPrefix(e.FullURL, "urn:uuid:")
		}
		var pt *Patient
		for _, e := range b.Entries {
			raw, err := bundle.Rewrite(e.Resource, func(v string, k bundle.Kind) (string, error) {
				if t, ok := ids[v]; ok && k != bundle.Narrative {
					return t, nil
				}
				return v, nil
			})
			if err != nil {
				return nil, fmt.Errorf("population: %s: %w", b.File, err)
			}
			src := source{typ: e.Type, id: strings.TrimPrefix(ids[e.FullURL], e.Type+"/"), raw: string(raw)}
			if src.template, err = stamp(src, now); err != nil {
				return nil, fmt.Errorf("population: %s %s: %w", b.File, e.Type, err)
			}
			sources = append(sources, src)
			if e.Type == "Patient" {
				if pt, err = patientOf(src.id, raw); err != nil {
					return nil, fmt.Errorf("population: %s: %w", b.File, err)
				}
				patients = append(patients, *pt)
			}
		}
		if pt == nil {
			return nil, fmt.Errorf("population: %s: no Patient", b.File)
		}
	}
	replicas := (cfg.N + len(sources) - 1) / len(sources)
	width := suffixWidth(replicas)

	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "kiln.db")})
	if err != nil {
		return nil, err
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	p := &Population{Dir: dir, Version: Version}
	for k := range replicas {
		p.Shift = append(p.Shift, dateShift(k))
		for _, pt := range patients {
			p.Patients = append(p.Patients, Patient{ID: replicaUUID(pt.ID, k), Family: pt.Family + familySuffix(k, width), MRN: replicaUUID(pt.MRN, k)})
		}
	}

	// One replica is one Commit of about 1,250 changes; replicas are
	// prepared (rewritten, indexed) by one goroutine per CPU while the
	// store's single writer commits.
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	go func() {
		defer close(next)
		for k := range replicas {
			select {
			case next <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		stored   atomic.Int64
		mu       sync.Mutex // guards firstErr
		firstErr error
	)
	lastUpdated := now.Format(lastUpdatedLayout)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			err := func() error {
				for k := range next {
					changes := make([]store.Change, 0, len(sources))
					for _, src := range sources {
						body := strings.Replace(replica(src.template, k, p.Shift[k], familySuffix(k, width)), lastUpdatedMark, lastUpdated, 1)
						if k%verifyEvery == 0 {
							r := source{typ: src.typ, id: replicaUUID(src.id, k), raw: replica(src.raw, k, p.Shift[k], familySuffix(k, width))}
							want, err := stamp(r, now)
							if err != nil {
								return fmt.Errorf("population: replica %d of %s/%s: %w", k, src.typ, src.id, err)
							}
							if want = strings.Replace(want, lastUpdatedMark, lastUpdated, 1); want != body {
								return fmt.Errorf("population: replica %d of %s/%s differs from its validated and stamped source", k, src.typ, src.id)
							}
						}
						index, err := search.Extract(src.typ, []byte(body))
						if err != nil {
							return fmt.Errorf("population: index %s: %w", src.typ, err)
						}
						changes = append(changes, store.Change{Type: src.typ, ID: replicaUUID(src.id, k), Version: 1,
							LastUpdated: now, Method: store.MethodPost, Body: []byte(body), Index: index})
					}
					if err := st.Commit(ctx, changes...); err != nil {
						return fmt.Errorf("population: commit replica %d: %w", k, err)
					}
					if n := stored.Add(int64(len(changes))); cfg.Progress != nil && k%16 == 15 {
						fmt.Fprintf(cfg.Progress, "population: %d of %d resources, %.0f/s\n", n, replicas*len(sources), float64(n)/time.Since(start).Seconds())
					}
				}
				return nil
			}()
			if err != nil {
				cancel()
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.Resources = int(stored.Load())
	p.LoadSeconds = time.Since(start).Seconds()
	p.Built = time.Now().UTC()
	err, st = st.Close(), nil
	if err != nil {
		return nil, err
	}
	if p.Resources != replicas*len(sources) {
		return nil, fmt.Errorf("population: stored %d resources, want %d", p.Resources, replicas*len(sources))
	}
	if p.FileBytes, p.IndexBytes, err = sizes(ctx, filepath.Join(dir, "kiln.db")); err != nil {
		return nil, err
	}
	return p, nil
}

// lastUpdatedLayout is how canonical JSON writes meta.lastUpdated
// (checked by stamp).
const lastUpdatedLayout = "2006-01-02T15:04:05.000000Z07:00"

// stamp validates src and returns its canonical JSON as version 1 written
// at now, with the lastUpdated instant replaced by lastUpdatedMark.
func stamp(src source, now time.Time) (string, error) {
	r, err := resource.Parse([]byte(src.raw))
	if err != nil {
		return "", err
	}
	if r.Type != src.typ {
		return "", fmt.Errorf("resourceType %s, want %s", r.Type, src.typ)
	}
	out, err := r.Stamp(src.id, 1, now)
	if err != nil {
		return "", err
	}
	lu := `"lastUpdated":"` + now.Format(lastUpdatedLayout) + `"`
	if strings.Count(string(out), lu) != 1 {
		return "", fmt.Errorf("canonical JSON does not hold %s once", lu)
	}
	return strings.Replace(string(out), lu, `"lastUpdated":"`+lastUpdatedMark+`"`, 1), nil
}

// patientOf reads what the benchmarks search a Patient by.
func patientOf(id string, raw []byte) (*Patient, error) {
	var pt struct {
		Name       []struct{ Family string }
		Identifier []struct{ System, Value string }
	}
	if err := json.Unmarshal(raw, &pt); err != nil {
		return nil, err
	}
	p := &Patient{ID: id}
	if len(pt.Name) > 0 {
		p.Family = pt.Name[0].Family
	}
	for _, i := range pt.Identifier {
		if i.System == SyntheaSystem {
			p.MRN = i.Value
		}
	}
	if p.Family == "" || p.MRN == "" {
		return nil, errors.New("a Patient without a family name or a Synthea identifier")
	}
	return p, nil
}

var (
	familyRE = regexp.MustCompile(`("family"\s*:\s*")([^"\\]+)"`)
	// namespace of the replica ids (a fixed random UUID).
	namespace = uuid.MustParse("6f2b0a54-3a8e-4d0c-9a57-8f1f3c1d2e90")
)

// replica is bundle text for replica k: every UUID (resource ids, fullUrls,
// references and the identifiers Synthea derives from ids) replaced by a
// fresh one, consistently within the replica; every JSON string that is a
// FHIR date (YYYY-MM-DD) or dateTime/instant moved by shift days, its time
// and offset kept; every family name suffixed.
//
// A million resources are 3.5 GB of bundle text, so UUIDs and dates are
// found by hand in one pass rather than with regular expressions (which
// took a tenth of the build's CPU).
func replica(text string, k, shift int, suffix string) string {
	var b strings.Builder
	b.Grow(len(text) + len(text)/16)
	last := 0
	for i := 0; i < len(text); {
		switch {
		case i+36 <= len(text) && isUUID(text[i:i+36]) && (i == 0 || !isHex(text[i-1])):
			b.WriteString(text[last:i])
			b.WriteString(replicaUUID(text[i:i+36], k))
			i += 36
			last = i
		case text[i] == '"':
			end, moved := shiftDate(text[i:], shift)
			if moved != "" {
				b.WriteString(text[last:i])
				b.WriteString(moved)
				i += end
				last = i
				continue
			}
			i++
		default:
			i++
		}
	}
	b.WriteString(text[last:])
	return familyRE.ReplaceAllString(b.String(), `${1}${2}`+suffix+`"`)
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// isUUID reports whether s (36 bytes) is a lower-case UUID.
func isUUID(s string) bool {
	for j := range 36 {
		switch j {
		case 8, 13, 18, 23:
			if s[j] != '-' {
				return false
			}
		default:
			if !isHex(s[j]) {
				return false
			}
		}
	}
	return true
}

// shiftDate looks at s, which starts with a quote: when the JSON string
// there is a date, or a date with a time and offset, it returns the
// string's length (quotes included) and the string moved by shift days.
func shiftDate(s string, shift int) (int, string) {
	end := strings.IndexByte(s[1:], '"') + 1
	if end < 11 || end > 40 {
		return 0, ""
	}
	v := s[1:end]
	d, err := time.Parse(time.DateOnly, v[:10])
	if err != nil || v[4] != '-' {
		return 0, "" // not a calendar date (nor 2021-02-30)
	}
	rest := v[10:]
	if rest != "" {
		// T hh:mm:ss, optional fraction, Z or ±hh:mm: as the regular
		// expression `T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`.
		if _, err := time.Parse("T15:04:05.999999999Z07:00", rest); err != nil {
			return 0, ""
		}
	}
	return end + 1, `"` + d.AddDate(0, 0, shift).Format(time.DateOnly) + rest + `"`
}

// replicaUUID is the id that u has in replica k: a name-based UUID, so
// that every replica's ids are new and a rebuild gives the same ones.
func replicaUUID(u string, k int) string {
	return uuid.NewSHA1(namespace, []byte(u+"/"+strconv.Itoa(k))).String()
}

// dateShift spreads the replicas over four years, two back and two
// forward (the data ends in 2021, so nothing lands after 2023).
func dateShift(k int) int { return (k*367)%1461 - 730 }

// suffixWidth is the number of letters that tells replicas apart (at
// least 3), so that every suffixed family has the same length and no
// family is a prefix of another (string search is starts-with).
func suffixWidth(replicas int) int {
	w, n := 1, 26
	for n < replicas {
		w, n = w+1, n*26
	}
	return max(w, 3)
}

// familySuffix is k in base 26 with letters, width letters long.
func familySuffix(k, width int) string {
	b := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('a' + k%26)
		k /= 26
	}
	return string(b)
}

// sizes reads the database file's size and its search index pages.
func sizes(ctx context.Context, path string) (file, index int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, `SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'ix\_%' ESCAPE '\' OR name = 'params'`).Scan(&index)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return fi.Size(), -1, nil
		}
		return 0, 0, errors.Join(errors.New("population: index size"), err)
	}
	return fi.Size(), index, nil
}
