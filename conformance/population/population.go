// Package population builds, and caches between runs, the large embedded
// store the issue 3 and issue 6 benchmarks measure at: the Synthea bundles
// of testdata replicated until at least N resources are stored (1,000,000
// by default), each replica with fresh ids, its dates shifted and its
// family names made distinct, so that searches by patient, name or
// identifier stay as selective as in a real population.
//
// The data is loaded with fhir/ingest, the engine of `kiln import`: every
// resource is parsed and validated, stamped, indexed and committed as an
// import writes it. Building a million resources takes many minutes on two
// cores, so the data directory is kept (under $KILN_BENCH_CACHE, default
// the system temporary directory) in a directory named after Version and
// N: a changed generator gets a new Version and so rebuilds. A build that
// did not finish leaves no manifest, and the next Open starts it again.
package population

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/ingest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// Version names the generator's output. Change it whenever what Build
// writes changes, so that cached populations are rebuilt.
const Version = "v1"

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
	// Progress receives ingest's progress lines while building (nil: none).
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
	// Built is when the build finished; LoadSeconds how long ingest took.
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
	return fmt.Sprintf("%d resources, %d Patients; loaded at %.0f resources/s (ingest, %s); file %.0f B/resource, %s",
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

// A replica's bundles are written to a scratch directory this many
// replicas at a time, loaded by ingest, and removed: a million resources
// of bundles would be 3.5 GB of files otherwise.
const replicasPerRun = 16

func build(ctx context.Context, dir string, cfg Config) (*Population, error) {
	bundles, err := synthea.Load(cfg.Synthea)
	if err != nil {
		return nil, err
	}
	type source struct {
		name string
		text string
		// The bundle's Patient: id, family and Synthea identifier value.
		patient Patient
		entries int
	}
	var sources []source
	perReplica := 0
	for _, b := range bundles {
		raw, err := os.ReadFile(filepath.Join(cfg.Synthea, b.File))
		if err != nil {
			return nil, err
		}
		s := source{name: strings.TrimSuffix(b.File, ".json"), text: string(raw), entries: len(b.Entries)}
		for _, e := range b.Entries {
			if e.Type != "Patient" {
				continue
			}
			var pt struct {
				ID   string
				Name []struct{ Family string }
				// Identifier values: the Synthea id.
				Identifier []struct{ System, Value string }
			}
			if err := json.Unmarshal(e.Resource, &pt); err != nil {
				return nil, err
			}
			s.patient.ID = pt.ID
			if len(pt.Name) > 0 {
				s.patient.Family = pt.Name[0].Family
			}
			for _, id := range pt.Identifier {
				if id.System == SyntheaSystem {
					s.patient.MRN = id.Value
				}
			}
		}
		if s.patient.ID == "" || s.patient.Family == "" || s.patient.MRN == "" {
			return nil, fmt.Errorf("population: %s: no Patient with an id, a family name and a Synthea identifier", b.File)
		}
		sources = append(sources, s)
		perReplica += s.entries
	}
	replicas := (cfg.N + perReplica - 1) / perReplica
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
	scratch := filepath.Join(dir, "scratch")
	start := time.Now()
	for first := 0; first < replicas; first += replicasPerRun {
		if err := os.MkdirAll(scratch, 0o755); err != nil {
			return nil, err
		}
		for k := first; k < min(first+replicasPerRun, replicas); k++ {
			shift := dateShift(k)
			p.Shift = append(p.Shift, shift)
			suffix := familySuffix(k, width)
			for _, s := range sources {
				text := replica(s.text, k, shift, suffix)
				if err := os.WriteFile(filepath.Join(scratch, fmt.Sprintf("%06d-%s.json", k, s.name)), []byte(text), 0o644); err != nil {
					return nil, err
				}
				p.Patients = append(p.Patients, Patient{
					ID: replicaUUID(s.patient.ID, k), Family: s.patient.Family + suffix, MRN: replicaUUID(s.patient.MRN, k)})
			}
		}
		sum, err := ingest.Run(ctx, st, []string{scratch}, ingest.Options{Progress: cfg.Progress})
		if err != nil {
			return nil, fmt.Errorf("population: load: %w", err)
		}
		if sum.Rejected > 0 {
			return nil, fmt.Errorf("population: %d resources rejected: %v (first at %v)", sum.Rejected, sum.Reasons, sum.Examples)
		}
		if sum.Created != sum.Loaded() {
			return nil, fmt.Errorf("population: ingest found %d of its resources already stored: replica ids collide", sum.Loaded()-sum.Created)
		}
		p.Resources += sum.Created
		if err := os.RemoveAll(scratch); err != nil {
			return nil, err
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "population: %d of %d replicas, %d resources, %.0f resources/s\n",
				min(first+replicasPerRun, replicas), replicas, p.Resources, float64(p.Resources)/time.Since(start).Seconds())
		}
	}
	p.LoadSeconds = time.Since(start).Seconds()
	p.Built = time.Now().UTC()
	err, st = st.Close(), nil
	if err != nil {
		return nil, err
	}
	if p.Resources != replicas*perReplica {
		return nil, fmt.Errorf("population: stored %d resources, want %d", p.Resources, replicas*perReplica)
	}
	if p.FileBytes, p.IndexBytes, err = sizes(ctx, filepath.Join(dir, "kiln.db")); err != nil {
		return nil, err
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
