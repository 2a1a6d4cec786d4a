package bulk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Checklist section E lines that no other test asserted when
// conformance/ACCEPTANCE.md was drawn up; each test names its lines.

// TestRepeatedElements: E-KO-07, every comma-separated parameter may be
// repeated and means the comma-joined list; _elements is one (_type and
// _typeFilter are in TestExportLevels).
func TestRepeatedElements(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	shape := func(path string) map[string][]string {
		got := s.download(s.poll(s.kickoff(path)).Output)
		out := map[string][]string{}
		for typ, rs := range got {
			for _, r := range rs {
				var keys []string
				for k := range r {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				out[typ] = append(out[typ], r["id"].(string)+":"+strings.Join(keys, ","))
			}
			slices.Sort(out[typ])
		}
		return out
	}
	s.put("Patient", "p5", `{"resourceType":"Patient","id":"p5","gender":"male","birthDate":"1970-01-01","name":[{"family":"F"}]}`)
	joined := shape("/$export?_type=Patient,Practitioner&_elements=" + url.QueryEscape("Patient.gender,Patient.birthDate"))
	repeated := shape("/$export?_type=Patient,Practitioner&_elements=Patient.gender&_elements=Patient.birthDate")
	if len(joined["Patient"]) != 4 || len(joined["Practitioner"]) != 1 {
		t.Fatalf("joined _elements exported %v", joined)
	}
	if want := "p5:birthDate,gender,id,meta,resourceType"; !slices.Contains(joined["Patient"], want) {
		t.Errorf("Patient/p5 with _elements=Patient.gender,Patient.birthDate: %v, want %s", joined["Patient"], want)
	}
	a, _ := json.Marshal(joined)
	b, _ := json.Marshal(repeated)
	if string(a) != string(b) {
		t.Errorf("repeated _elements differ from the comma-joined list:\njoined   %s\nrepeated %s", a, b)
	}
}

// TestNoOutputForEmptyTypes: E-ST-07, the manifest has no output item
// for a type with no data, and an empty export has an empty output.
func TestNoOutputForEmptyTypes(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	s.put("Group", "g-empty", `{"resourceType":"Group","id":"g-empty","type":"person","actual":true}`)
	for _, tc := range []struct {
		path  string
		types []string
	}{
		{"/$export?_type=Patient,Medication,Practitioner", []string{"Patient", "Practitioner"}},
		{"/Group/g1/$export?_type=Patient,Condition", []string{"Patient"}},
		{"/Group/g-empty/$export", nil},
	} {
		m := s.poll(s.kickoff(tc.path))
		var types []string
		for _, f := range m.Output {
			if f.Count == 0 {
				t.Errorf("%s: output item %+v with no resources", tc.path, f)
			}
			if !slices.Contains(types, f.Type) {
				types = append(types, f.Type)
			}
		}
		slices.Sort(types)
		if !slices.Equal(types, tc.types) {
			t.Errorf("%s: output types %v, want %v", tc.path, types, tc.types)
		}
		if m.Output == nil {
			t.Errorf("%s: output absent, want an array (E-ST-06)", tc.path)
		}
	}
}

// TestGroupReadAndSearch: E-FI-09, a server with Group export reads
// Groups and finds them by identifier, as a client picks the group to
// export.
func TestGroupReadAndSearch(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	s.put("Group", "g-id", `{"resourceType":"Group","id":"g-id","type":"person","actual":true,"identifier":[{"system":"http://example.org/groups","value":"cohort-7"}],
		"member":[{"entity":{"reference":"Patient/p3"}}]}`)
	if r := s.do("GET", "/Group/g-id", nil); r.status != 200 || !strings.Contains(string(r.body), `"cohort-7"`) {
		t.Errorf("read Group: %d %s", r.status, r.body)
	}
	r := s.do("GET", "/Group?identifier="+url.QueryEscape("http://example.org/groups|cohort-7"), nil)
	var b struct {
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.body, &b); r.status != 200 || err != nil || len(b.Entry) != 1 || b.Entry[0].Resource.ID != "g-id" {
		t.Fatalf("search Group by identifier: %d %s", r.status, r.body)
	}
	m := s.poll(s.kickoff("/Group/" + b.Entry[0].Resource.ID + "/$export?_type=Patient"))
	if got := ids(s.download(m.Output)); !slices.Equal(got, []string{"Patient/p3"}) {
		t.Errorf("export of the Group found by identifier: %v", got)
	}
}

// TestExpiryWaitsForDownload: E-FI-06, a file being downloaded is not
// deleted under the client when the export expires: the download that
// started before the expiry reads every line, and the export goes once it
// ends. The file is larger than loopback socket buffers hold, so the
// server is still streaming it while the expiry passes.
func TestExpiryWaitsForDownload(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 24 MiB")
	}
	s := newServer(t, Config{Expiry: 300 * time.Millisecond})
	div := strings.Repeat("x", 512<<10)
	const patients = 48
	for i := range patients {
		s.put("Patient", fmt.Sprint("big", i), fmt.Sprintf(`{"resourceType":"Patient","id":"big%d","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">%s</div>"}}`, i, div))
	}
	st := s.kickoff("/$export?_type=Patient")
	m := s.poll(st)
	if len(m.Output) != 1 || m.Output[0].Count != patients {
		t.Fatalf("output %+v", m.Output)
	}
	resp, err := http.Get(m.Output[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // past the expiry; the sweep runs every Poll (20 ms)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(append(head, rest...), []byte("\n")); lines != patients {
		t.Errorf("the download that began before the expiry holds %d lines, want %d", lines, patients)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.do("GET", st, nil).status != 404 {
		if time.Now().After(deadline) {
			t.Fatal("the export did not expire once the download ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
