package population

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

func TestReplica(t *testing.T) {
	const u = "e925b0f3-8006-43f6-aa31-94bd215e55e7"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"ids move, consistently", `{"id":"` + u + `","ref":"urn:uuid:` + u + `"}`,
			`{"id":"` + replicaUUID(u, 3) + `","ref":"urn:uuid:` + replicaUUID(u, 3) + `"}`},
		{"date", `{"birthDate": "2020-02-28"}`, `{"birthDate": "2020-03-01"}`},
		{"dateTime keeps time and offset", `{"start":"2020-12-31T23:59:58+01:00"}`, `{"start":"2021-01-02T23:59:58+01:00"}`},
		{"instant keeps its fraction", `{"issued":"2021-02-19T19:58:14.614Z"}`, `{"issued":"2021-02-21T19:58:14.614Z"}`},
		{"not a whole date string", `{"div":"seen 2020-02-28 at noon","v":"2020-02"}`, `{"div":"seen 2020-02-28 at noon","v":"2020-02"}`},
		{"dates in an array", `{"a":["2020-02-28","x","2020-02-28T00:00:00Z"]}`, `{"a":["2020-03-01","x","2020-03-01T00:00:00Z"]}`},
		{"not a calendar date", `{"a":"2021-02-30","b":"2021-02-28T25:00:00Z"}`, `{"a":"2021-02-30","b":"2021-02-28T25:00:00Z"}`},
		{"family", `{"family": "Koepp", "given": ["Abdul"]}`, `{"family": "Koeppxyz", "given": ["Abdul"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replica(tc.in, 3, 2, "xyz"); got != tc.want {
				t.Errorf("replica(%s)\n got %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
	if replicaUUID(u, 1) == replicaUUID(u, 2) || replicaUUID(u, 1) == u {
		t.Error("replica ids are not fresh per replica")
	}
}

func TestSuffixes(t *testing.T) {
	for _, tc := range []struct {
		replicas, width int
	}{{1, 3}, {805, 3}, {17576, 3}, {17577, 4}} {
		if got := suffixWidth(tc.replicas); got != tc.width {
			t.Errorf("suffixWidth(%d) = %d, want %d", tc.replicas, got, tc.width)
		}
	}
	seen := map[string]bool{}
	for k := range 17576 {
		s := familySuffix(k, 3)
		if len(s) != 3 || seen[s] {
			t.Fatalf("suffix %d = %q: not 3 letters or repeated", k, s)
		}
		seen[s] = true
	}
	for k := range 2000 {
		if d := dateShift(k); d < -730 || d > 730 {
			t.Fatalf("dateShift(%d) = %d days, beyond two years", k, d)
		}
	}
}

// TestOpen builds a two-replica population, opens it again from the
// cache, and searches it: each replica's Patient is found alone by its
// family name and by its identifier, and its dates moved by the
// replica's shift.
func TestOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 2,486 resources through ingest")
	}
	ctx := context.Background()
	const dir = "../../testdata/synthea"
	entries, err := synthea.Entries(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{N: len(entries) + 1, Synthea: dir, Cache: t.TempDir()}
	p, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Cached || p.Resources != 2*len(entries) || len(p.Patients) != 14 || len(p.Shift) != 2 {
		t.Fatalf("built %d resources, %d Patients, %d shifts (cached %v); want %d, 14, 2", p.Resources, len(p.Patients), len(p.Shift), p.Cached, 2*len(entries))
	}
	if p.LoadRate() <= 0 || p.FileBytes <= 0 || p.IndexBytes == 0 {
		t.Errorf("figures: %v", p)
	}
	t.Log(p)
	again, err := Open(ctx, cfg)
	if err != nil || !again.Cached || again.Resources != p.Resources || len(again.Patients) != len(p.Patients) {
		t.Fatalf("second Open: cached %v, %v, err %v", again != nil && again.Cached, again, err)
	}

	// The originals' birth dates, by family name.
	births := map[string]time.Time{}
	for _, e := range entries {
		if e.Type == "Patient" {
			var pt struct {
				BirthDate string
				Name      []struct{ Family string }
			}
			json.Unmarshal(e.Resource, &pt)
			d, err := time.Parse(time.DateOnly, pt.BirthDate)
			if err != nil {
				t.Fatal(err)
			}
			births[pt.Name[0].Family] = d
		}
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(p.Dir, "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := map[string]bool{}
	for i, pt := range p.Patients {
		if ids[pt.ID] {
			t.Fatalf("Patient id %s twice", pt.ID)
		}
		ids[pt.ID] = true
		for _, q := range []url.Values{
			{"name": {pt.Family}},
			{"identifier": {SyntheaSystem + "|" + pt.MRN}},
		} {
			query, _, err := search.Parse([]string{"Patient"}, q, search.ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			page, err := st.Search(ctx, query)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Matches) != 1 || page.Matches[0].ID != pt.ID {
				t.Fatalf("Patient?%s: %d matches, want only %s", q.Encode(), len(page.Matches), pt.ID)
			}
			var got struct{ BirthDate string }
			json.Unmarshal(page.Matches[0].Body, &got)
			k := i / len(births)                 // Patients are listed replica by replica
			base := pt.Family[:len(pt.Family)-3] // without the 3-letter replica suffix
			if want := births[base].AddDate(0, 0, p.Shift[k]).Format(time.DateOnly); got.BirthDate != want {
				t.Errorf("Patient %s (replica %d): birthDate %s, want %s", pt.ID, k, got.BirthDate, want)
			}
		}
	}
}
