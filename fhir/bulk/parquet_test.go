package bulk

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/bulk/tabular"
)

// keyColumns are compared between the Parquet and the NDJSON export of
// the same resources.
var keyColumns = []string{"id", "meta.lastUpdated", "meta.versionId", "subject.reference", "code.coding.code",
	"code.coding.system", "valueQuantity.value", "valueQuantity.unit", "birthDate", "gender", "name.family", "status"}

// TestParquet exports the same resources as NDJSON and as Parquet and
// reads every Parquet file back with parquet-go's reader: one type per
// file, the manifest's count is the file's rows, resource_json is the
// NDJSON line byte for byte, and the key columns hold the values of the
// NDJSON resource at their paths. _type, _typeFilter, _elements, Group
// and _since exports each.
func TestParquet(t *testing.T) {
	s := newServer(t, Config{MaxJobs: 10})
	seed(s)
	s.put("Patient", "pb", `{"resourceType":"Patient","id":"pb","birthDate":"1974-12","gender":"male"}`)
	s.put("Observation", "o-dec", `{"resourceType":"Observation","id":"o-dec","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/pb"},"valueQuantity":{"value":72.50,"unit":"/min"}}`)
	first := s.poll(s.kickoff("/$export?_type=Patient"))
	time.Sleep(2 * time.Millisecond)
	s.put("Patient", "p1", patientJSON("p1", "male"))
	s.del("Observation", "o-p2-a")
	since := url.QueryEscape(first.TransactionTime)

	for _, tc := range []struct{ name, path string }{
		// Named types: every type of a system export is scanned, which
		// on FerretDB (TestOnMongo) takes seconds per export.
		{"system", "/$export?_type=Patient,Observation,Encounter,Practitioner,Group"},
		{"_type and _typeFilter", "/$export?_type=Observation,Patient&_typeFilter=" + url.QueryEscape("Observation?code=8867-4")},
		{"_elements", "/$export?_type=Observation,Patient&_elements=Observation.valueQuantity,Patient.birthDate"},
		{"group", "/Group/g1/$export?"},
		{"_since", "/$export?_type=Patient,Observation&_since=" + since},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nd := s.poll(s.kickoff(tc.path))
			formats := []string{"application/vnd.apache.parquet"}
			if tc.name == "system" {
				formats = append(formats, "parquet") // the short name too
			}
			for _, f := range formats {
				pq := s.poll(s.kickoff(tc.path + "&_outputFormat=" + url.QueryEscape(f)))
				want := lines(t, s, nd.Output)
				got := parquetRows(t, s, pq.Output)
				if len(want) == 0 {
					t.Fatalf("the NDJSON export is empty")
				}
				if len(got) != len(want) {
					t.Errorf("Parquet types %v, NDJSON types %v", keys(got), keys(want))
				}
				for typ, ls := range want {
					rows := got[typ]
					if len(rows) != len(ls) {
						t.Errorf("%s: %d Parquet rows, %d NDJSON lines", typ, len(rows), len(ls))
						continue
					}
					for i, l := range ls {
						if j := rows[i][tabular.JSONColumn]; len(j) != 1 || j[0] != string(l) {
							t.Errorf("%s row %d: resource_json %q, NDJSON %s", typ, i, j, l)
						}
						var res map[string]any
						d := json.NewDecoder(bytes.NewReader(l))
						d.UseNumber()
						d.Decode(&res)
						for _, col := range keyColumns {
							if w := valuesAt(res, strings.Split(col, ".")); !slices.Equal(rows[i][col], w) {
								t.Errorf("%s row %d: %s is %q, NDJSON %q", typ, i, col, rows[i][col], w)
							}
						}
					}
				}
				// The IG's error and deleted files stay NDJSON.
				if len(nd.Deleted) != len(pq.Deleted) {
					t.Errorf("deleted: %d files, NDJSON export %d", len(pq.Deleted), len(nd.Deleted))
				}
				s.download(pq.Deleted)
			}
		})
	}
}

// TestParquetSplit: a type's Parquet files are split at MaxFileSize (after
// a row group) and together hold every resource once.
func TestParquetSplit(t *testing.T) {
	s := newServer(t, Config{MaxFileSize: 1})
	seed(s)
	m := s.poll(s.kickoff("/$export?_type=Observation&_outputFormat=parquet"))
	n := 0
	for _, rows := range parquetRows(t, s, m.Output) {
		n += len(rows)
	}
	if len(m.Output) < 2 || n != len(current(t, s.st, "Observation")) {
		t.Errorf("%d files, %d rows for %d observations", len(m.Output), n, len(current(t, s.st, "Observation")))
	}
}

// lines downloads NDJSON files: each type's lines in manifest order.
func lines(t *testing.T, s *server, files []manifestFile) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	for _, f := range files {
		r := s.do("GET", f.URL, nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d", f.URL, r.status)
		}
		for _, l := range bytes.Split(bytes.TrimSuffix(r.body, []byte("\n")), []byte("\n")) {
			out[f.Type] = append(out[f.Type], l)
		}
	}
	return out
}

// parquetRows downloads Parquet files and reads them back: each type's
// rows in manifest order.
func parquetRows(t *testing.T, s *server, files []manifestFile) map[string][]map[string][]string {
	t.Helper()
	out := map[string][]map[string][]string{}
	for _, f := range files {
		if !strings.HasSuffix(f.URL, ".parquet") {
			t.Errorf("Parquet file URL %s", f.URL)
		}
		r := s.do("GET", f.URL, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "application/vnd.apache.parquet" {
			t.Fatalf("GET %s: %d %s", f.URL, r.status, r.header.Get("Content-Type"))
		}
		rows, err := tabular.Rows(bytes.NewReader(r.body), int64(len(r.body)))
		if err != nil {
			t.Fatalf("%s: %v", f.URL, err)
		}
		if len(rows) != f.Count {
			t.Errorf("%s: %d rows, manifest count %d", f.URL, len(rows), f.Count)
		}
		for _, row := range rows {
			var head struct{ ResourceType string }
			if json.Unmarshal([]byte(strings.Join(row[tabular.JSONColumn], "")), &head); head.ResourceType != f.Type {
				t.Errorf("%s: a %s in a %s file", f.URL, head.ResourceType, f.Type)
			}
		}
		out[f.Type] = append(out[f.Type], rows...)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// valuesAt returns the primitive values at path in a decoded resource as
// text, arrays flattened.
func valuesAt(v any, path []string) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, valuesAt(e, path)...)
		}
		return out
	case map[string]any:
		if len(path) == 0 {
			return nil
		}
		return valuesAt(v[path[0]], path[1:])
	case json.Number:
		if len(path) == 0 {
			return []string{v.String()}
		}
	case string:
		if len(path) == 0 {
			return []string{v}
		}
	case bool:
		if len(path) == 0 {
			return []string{map[bool]string{true: "true", false: "false"}[v]}
		}
	}
	return nil
}
