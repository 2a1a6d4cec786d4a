package resource

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/jsonvalue"
)

// TestStampSplice checks that Stamp, which splices id and meta into a
// template, gives byte for byte what the old path gave (google/fhir's
// marshal of the stamped proto, resourceType moved first) over every
// official example and every Synthea resource, for several stamps of the
// same Resource (ingest stamps twice: to compare, then to write).
func TestStampSplice(t *testing.T) {
	files, err := filepath.Glob("../../testdata/examples/*.json")
	if err != nil || len(files) < 300 {
		t.Fatalf("testdata/examples: %d files, %v", len(files), err)
	}
	var bodies [][]byte
	var names []string
	for _, f := range files {
		if _, bad := invalidExamples[filepath.Base(f)]; bad {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies, names = append(bodies, b), append(names, filepath.Base(f))
	}
	for i, b := range syntheaResources(t) {
		bodies, names = append(bodies, b), append(names, fmt.Sprintf("synthea #%d", i))
	}
	paris := time.FixedZone("CEST", 2*3600)
	stamps := []struct {
		id      string
		version int64
		at      time.Time
	}{
		{"", 1, time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)}, // "" = the body's own id
		{"a-new.id-64", 12, time.Date(2026, 1, 2, 3, 4, 5, 0, paris)},
		{"X", 1234567890123, time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
	}
	fast := 0
	for n, body := range bodies {
		spliced, err := Parse(body)
		if err != nil {
			t.Fatalf("%s: Parse: %v", names[n], err)
		}
		for _, s := range stamps {
			id := s.id
			if id == "" {
				id = spliced.ID
			}
			if id == "" {
				id = "no-id-in-body"
			}
			got, err := spliced.Stamp(id, s.version, s.at)
			if err != nil {
				t.Fatalf("%s: Stamp: %v", names[n], err)
			}
			// The old path, on a fresh parse: one marshal per stamp.
			old, err := parse(body, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			want, err := old.marshal(id, s.version, s.at)
			if err != nil {
				t.Fatalf("%s: marshal: %v", names[n], err)
			}
			resourceTypeFirst(want)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s stamped %s/%d/%v:\n got %s\nwant %s", names[n], id, s.version, s.at, got, want)
			}
		}
		if spliced.val != nil { // the body path (encode.go), not the marshal
			fast++
		} else {
			t.Logf("marshal path: %s", names[n])
		}
	}
	// The comparison above passes on the marshal path too: make sure the
	// template made from the body is what was compared.
	// A few examples hold what the body path leaves to the marshal
	// (encode.go: _birthDate and the like); Synthea holds none.
	if slow := len(bodies) - fast; slow > len(bodies)/50 {
		t.Errorf("the body path served %d of %d resources, want all but a few", fast, len(bodies))
	}
	t.Logf("%d resources compared", len(bodies))
}

// TestMarkedTemplate: the holes valueTemplate notes while it encodes are
// those newTemplate finds by scanning, over every official example and
// Synthea resource the body path takes, including meta that holds a
// valueMeta extension of its own (an inner lastUpdated before the
// resource's).
func TestMarkedTemplate(t *testing.T) {
	files, err := filepath.Glob("../../testdata/examples/*.json")
	if err != nil || len(files) < 300 {
		t.Fatalf("testdata/examples: %d files, %v", len(files), err)
	}
	bodies := [][]byte{
		[]byte(`{"resourceType":"Patient","meta":{"extension":[{"url":"http://x","valueMeta":{"lastUpdated":"2020-01-01T00:00:00.000Z","versionId":"7"}}],"tag":[{"code":"t"}]},"active":true}`),
		[]byte(`{"resourceType":"Basic","code":{"text":"x"},"id":"zzz"}`),
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	bodies = append(bodies, syntheaResources(t)...)
	marked := 0
	for i, body := range bodies {
		v, err := jsonvalue.Decode(body)
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		m := v.(map[string]any)
		if _, ok := valueTemplate(m, len(body)); !ok {
			continue // the marshal path's
		}
		var idAt, metaAt, rtAt [2]int
		b, _ := appendObject(nil, m, func(k string, start, end int) {
			switch k {
			case "id":
				idAt = [2]int{start, end}
			case "meta":
				metaAt = [2]int{start, end}
			case "resourceType":
				rtAt = [2]int{start, end}
			}
		})
		resourceTypeFirst(b)
		got, ok := markedTemplate(b, idAt, metaAt, rtAt)
		if !ok {
			t.Errorf("body %d: no marked template", i)
			continue
		}
		want, err := newTemplate(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.holes != want.holes || got.what != want.what {
			t.Errorf("body %d: holes %v %v, newTemplate finds %v %v", i, got.holes, got.what, want.holes, want.what)
		}
		marked++
	}
	if marked < len(bodies)/2 {
		t.Errorf("only %d of %d bodies took the body path", marked, len(bodies))
	}
}
