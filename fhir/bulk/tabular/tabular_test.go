package tabular

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func readBack(t *testing.T, data []byte) []map[string][]string {
	t.Helper()
	rows, err := Rows(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	return rows
}

// TestExamples writes every official R4 example into its type's file and
// reads it back: each fits the columns, resource_json is byte for byte
// the resource, and the columns hold its elements.
func TestExamples(t *testing.T) {
	paths, err := filepath.Glob("../../../testdata/examples/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("examples: %v %d", err, len(paths))
	}
	byType := map[string][][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var head struct{ ResourceType string }
		if err := json.Unmarshal(b, &head); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b); err != nil {
			t.Fatal(err)
		}
		byType[head.ResourceType] = append(byType[head.ResourceType], compact.Bytes())
	}
	types := make([]string, 0, len(byType))
	for typ := range byType {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			var out bytes.Buffer
			w, err := NewWriter(&out, typ)
			if err != nil {
				t.Fatal(err)
			}
			for _, body := range byType[typ] {
				if err := w.Write(body); err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rows := readBack(t, out.Bytes())
			schema, _ := Schema(typ)
			if len(rows) != len(byType[typ]) {
				t.Fatalf("%d rows, wrote %d", len(rows), len(byType[typ]))
			}
			for i, row := range rows {
				if got := row[JSONColumn]; len(got) != 1 || got[0] != string(byType[typ][i]) {
					t.Errorf("row %d: resource_json\n%s\nwant\n%s", i, got, byType[typ][i])
				}
				checkColumns(t, schema, row, byType[typ][i])
			}
		})
	}
}

func TestSchemaShape(t *testing.T) {
	cols, err := Columns("Observation")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id", "meta.lastUpdated", "subject.reference", "code.coding.code", "valueQuantity.value",
		"valueString", "component.code.coding.code", "extension.url", "extension.valueCoding.code", "contained", JSONColumn} {
		found := false
		for _, c := range cols {
			found = found || c == want
		}
		if !found {
			t.Errorf("Observation has no column %s", want)
		}
	}
}

// checkColumns compares every column of a row with the resource's JSON
// at the column's path: the same values, in order. A JSON column holds
// each element at its path as JSON.
func checkColumns(t *testing.T, s *parquet.Schema, row map[string][]string, body []byte) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var res any
	if err := d.Decode(&res); err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Columns() {
		name := strings.Join(p, ".")
		if name == JSONColumn {
			continue
		}
		leaf, _ := s.Lookup(p...)
		asJSON := leaf.Node.Type().String() == "JSON"
		var want []string
		for _, v := range at(res, p) {
			switch v := v.(type) {
			case string:
				want = append(want, v)
			case json.Number:
				want = append(want, v.String())
			case bool:
				want = append(want, fmt.Sprint(v))
			default:
				if !asJSON {
					t.Errorf("%s: a %T in a primitive column", name, v)
				}
				b, _ := json.Marshal(v)
				want = append(want, string(b))
			}
		}
		got := row[name]
		if asJSON {
			got = slices.Clone(got)
			for i, g := range got {
				d := json.NewDecoder(strings.NewReader(g))
				d.UseNumber()
				var v any
				if err := d.Decode(&v); err != nil {
					t.Errorf("%s: %q is not JSON", name, g)
				}
				b, _ := json.Marshal(v)
				got[i] = string(b)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: column %q, resource %q", name, got, want)
		}
	}
}

// at returns the values at path in a decoded resource, arrays flattened
// and nulls left out.
func at(v any, path []string) []any {
	if a, ok := v.([]any); ok {
		var out []any
		for _, e := range a {
			out = append(out, at(e, path)...)
		}
		return out
	}
	if v == nil {
		return nil
	}
	if len(path) == 0 {
		return []any{v}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	return at(m[path[0]], path[1:])
}

// TestValues: decimals keep their digits (a float64 would not), integers
// and booleans are typed, and what is not a JSON object is an error.
func TestValues(t *testing.T) {
	for _, tc := range []struct {
		name, body, column string
		want               []string
		err                bool
	}{
		{"decimal precision", `{"resourceType":"Observation","valueQuantity":{"value":0.1000000000000000055511151231257827}}`,
			"valueQuantity.value", []string{"0.1000000000000000055511151231257827"}, false},
		{"decimal trailing zeros", `{"resourceType":"Observation","valueQuantity":{"value":72.50}}`,
			"valueQuantity.value", []string{"72.50"}, false},
		{"integer", `{"resourceType":"Observation","valueInteger":7}`, "valueInteger", []string{"7"}, false},
		{"boolean", `{"resourceType":"Patient","active":true}`, "active", []string{"true"}, false},
		{"partial date", `{"resourceType":"Patient","birthDate":"1974"}`, "birthDate", []string{"1974"}, false},
		{"extension value", `{"resourceType":"Patient","extension":[{"url":"u","valueCoding":{"code":"2106-3"}}]}`,
			"extension.valueCoding.code", []string{"2106-3"}, false},
		{"not an object", `["resourceType"]`, "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := "Observation"
			if strings.Contains(tc.body, `"Patient"`) {
				typ = "Patient"
			}
			var out bytes.Buffer
			w, err := NewWriter(&out, typ)
			if err != nil {
				t.Fatal(err)
			}
			err = w.Write([]byte(tc.body))
			if tc.err {
				if err == nil {
					t.Errorf("Write(%s): no error", tc.body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rows := readBack(t, out.Bytes())
			if len(rows) != 1 || !slices.Equal(rows[0][tc.column], tc.want) {
				t.Errorf("%s: %v, want %v", tc.column, rows, tc.want)
			}
		})
	}
}
