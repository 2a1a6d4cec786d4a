package parquetsql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/kiln-fhir/kiln/fhir/bulk"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// TestParquetInDuckDB loads the Synthea bundles of testdata into a SQLite
// store through the REST API, runs a system $export with
// _outputFormat=application/vnd.apache.parquet over loopback HTTP, saves
// the files, and queries them with DuckDB: every type's row count equals
// the manifest's and the store's, and the columns analysts use (ids,
// genders, birth dates, references, codes, nested codings) hold the
// resources' values, read back from the store's JSON.
func TestParquetInDuckDB(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exports := bulk.New(bulk.Config{Settle: -1, Poll: 20 * time.Millisecond, MinPoll: -1}, st)
	defer exports.Close()
	api := rest.New(rest.Config{}, st)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exports.Match(r) {
			exports.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()

	bundles, err := filepath.Glob("../../testdata/synthea/*.json")
	if err != nil || len(bundles) == 0 {
		t.Fatalf("no Synthea bundles: %v", err)
	}
	for _, f := range bundles {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if r := do(t, "POST", srv.URL, body, "Content-Type", "application/fhir+json"); r.status != 200 {
			t.Fatalf("POST %s: %d %.300s", filepath.Base(f), r.status, r.body)
		}
	}

	r := do(t, "GET", srv.URL+"/$export?_outputFormat=application%2Fvnd.apache.parquet", nil,
		"Accept", "application/fhir+json", "Prefer", "respond-async")
	if r.status != 202 {
		t.Fatalf("kick-off: %d %s", r.status, r.body)
	}
	m := poll(t, r.header.Get("Content-Location"))
	dir := t.TempDir()
	manifest := map[string]int{} // type → rows, by the manifest
	for i, f := range m.Output {
		r := do(t, "GET", f.URL, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "application/vnd.apache.parquet" {
			t.Fatalf("GET %s: %d %s", f.URL, r.status, r.header.Get("Content-Type"))
		}
		// DuckDB globs the files of a type by name.
		name := filepath.Join(dir, fmt.Sprintf("%s.%d.parquet", f.Type, i))
		if err := os.WriteFile(name, r.body, 0o600); err != nil {
			t.Fatal(err)
		}
		manifest[f.Type] += f.Count
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	files := func(typ string) string { return "'" + filepath.Join(dir, typ+".*.parquet") + "'" }

	// Counts: DuckDB's, the manifest's and the store's agree for every
	// type, and the store's types are all there.
	stored := currentByType(t, st)
	if len(stored) < 10 {
		t.Fatalf("the store holds only %d types", len(stored))
	}
	for typ, ids := range stored {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM read_parquet(" + files(typ) + ")").Scan(&n); err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		if n != len(ids) || manifest[typ] != len(ids) {
			t.Errorf("%s: DuckDB counts %d rows, the manifest %d, the store holds %d", typ, n, manifest[typ], len(ids))
		}
	}
	if len(manifest) != len(stored) {
		t.Errorf("the manifest has %d types, the store %d", len(manifest), len(stored))
	}

	// Fields, each query against the stored JSON of the same resources.
	patients := stored["Patient"]
	for _, tc := range []struct {
		name, typ, query string
		// want is the value the query returns for one stored resource,
		// "" when it has none (NULL, no row).
		want func(res map[string]any) string
	}{
		{"Patient.gender", "Patient", "SELECT id, gender FROM %s", func(res map[string]any) string { return str(res["gender"]) }},
		{"Patient.birthDate", "Patient", "SELECT id, birthDate FROM %s", func(res map[string]any) string { return str(res["birthDate"]) }},
		{"Patient.name.family (repeated group)", "Patient", "SELECT id, name[1].family FROM %s", func(res map[string]any) string {
			return str(path(res, "name", 0, "family"))
		}},
		{"Observation.subject.reference", "Observation", "SELECT id, subject.reference FROM %s", func(res map[string]any) string {
			return str(path(res, "subject", "reference"))
		}},
		{"Observation.code.coding.code (nested repeated)", "Observation", "SELECT id, code.coding[1].code FROM %s", func(res map[string]any) string {
			return str(path(res, "code", "coding", 0, "code"))
		}},
		{"Observation.valueQuantity.value (decimal as text)", "Observation", "SELECT id, valueQuantity.value FROM %s", func(res map[string]any) string {
			return str(path(res, "valueQuantity", "value"))
		}},
		{"Encounter.status", "Encounter", "SELECT id, status FROM %s", func(res map[string]any) string { return str(res["status"]) }},
		{"resource_json (JSON)", "Condition", "SELECT id, json_extract_string(resource_json, '$.clinicalStatus.coding[0].code') FROM %s", func(res map[string]any) string {
			return str(path(res, "clinicalStatus", "coding", 0, "code"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := db.Query(fmt.Sprintf(tc.query, "read_parquet("+files(tc.typ)+")"))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			got := map[string]string{}
			for rows.Next() {
				var id string
				var v sql.NullString
				if err := rows.Scan(&id, &v); err != nil {
					t.Fatal(err)
				}
				got[id] = v.String
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			nonEmpty := 0
			for id, body := range stored[tc.typ] {
				var res map[string]any
				d := json.NewDecoder(bytes.NewReader(body))
				d.UseNumber() // decimals as written: "72.50" stays "72.50"
				if err := d.Decode(&res); err != nil {
					t.Fatal(err)
				}
				want := tc.want(res)
				if got[id] != want {
					t.Errorf("%s/%s: DuckDB %q, the store %q", tc.typ, id, got[id], want)
				}
				if want != "" {
					nonEmpty++
				}
			}
			if nonEmpty == 0 {
				t.Errorf("no %s in the store has a value: the query checks nothing", tc.typ)
			}
		})
	}

	// An analyst's query across types: Observations per patient, joined
	// on the reference, equals the count from the store's JSON.
	want := map[string]int{}
	for _, body := range stored["Observation"] {
		var o struct{ Subject struct{ Reference string } }
		if err := json.Unmarshal(body, &o); err != nil {
			t.Fatal(err)
		}
		want[strings.TrimPrefix(o.Subject.Reference, "Patient/")]++
	}
	rows, err := db.Query(`SELECT p.id, count(o.id) FROM read_parquet(` + files("Patient") + `) AS p
		LEFT JOIN read_parquet(` + files("Observation") + `) AS o ON o.subject.reference = 'Patient/' || p.id
		GROUP BY p.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		seen++
		if n != want[id] {
			t.Errorf("Patient/%s: %d Observations by DuckDB's join, %d in the store", id, n, want[id])
		}
	}
	if seen != len(patients) || seen == 0 {
		t.Errorf("the join saw %d patients, the store holds %d", seen, len(patients))
	}
}

// currentByType reads every current resource of the store: type → id →
// body.
func currentByType(t *testing.T, st store.Scanner) map[string]map[string][]byte {
	t.Helper()
	out := map[string]map[string][]byte{}
	for _, typ := range resource.Types() {
		q := store.ScanQuery{Type: typ, At: time.Now(), Count: 500}
		for {
			page, err := st.Scan(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Resources {
				if out[typ] == nil {
					out[typ] = map[string][]byte{}
				}
				out[typ][r.ID] = r.Body
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	return out
}

// path walks a decoded resource by keys and indexes.
func path(v any, steps ...any) any {
	for _, s := range steps {
		switch k := s.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url string, body []byte, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

type manifest struct {
	Output []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error []json.RawMessage `json:"error"`
}

func poll(t *testing.T, status string) manifest {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		r := do(t, "GET", status, nil)
		switch r.status {
		case 202:
			time.Sleep(50 * time.Millisecond)
		case 200:
			var m manifest
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatal(err)
			}
			if len(m.Error) > 0 || len(m.Output) == 0 {
				t.Fatalf("manifest: %s", r.body)
			}
			return m
		default:
			t.Fatalf("poll: %d %s", r.status, r.body)
		}
	}
	t.Fatal("the export did not finish")
	return manifest{}
}
