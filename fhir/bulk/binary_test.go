package bulk

import (
	"encoding/json"
	"net/url"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/resource"
)

// TestBinaryAsDocumentReference: a Patient or Group export gives the
// patients' Binaries (securityContext → Patient) as DocumentReferences
// with content.attachment: contentType, the data, and an absolute url
// that reads the Binary (E-FI-05, E-FI-02). Binaries of other patients or
// of none stay out; a system export gives Binaries as themselves.
func TestBinaryAsDocumentReference(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	s.put("Binary", "b1", `{"resourceType":"Binary","id":"b1","contentType":"application/pdf","securityContext":{"reference":"Patient/p1"},"data":"JVBERi0xLjQ="}`)
	s.put("Binary", "b3", `{"resourceType":"Binary","id":"b3","contentType":"text/plain","securityContext":{"reference":"Patient/p3"},"data":"a2lsbg=="}`)
	s.put("Binary", "b-none", `{"resourceType":"Binary","id":"b-none","contentType":"text/plain","data":"a2lsbg=="}`)
	s.put("DocumentReference", "dr1", `{"resourceType":"DocumentReference","id":"dr1","status":"current","subject":{"reference":"Patient/p1"},"content":[{"attachment":{"contentType":"text/plain","data":"a2lsbg=="}}]}`)
	binaries := map[string]string{"binary-b1": "b1", "binary-b3": "b3"}

	for _, tc := range []struct {
		name, path string
		want       []string // DocumentReference ids
		binary     []string // Binary ids exported as Binary
	}{
		{"group", "/Group/g1/$export", []string{"binary-b1", "dr1"}, nil},
		{"patient, _type=DocumentReference", "/Patient/$export?_type=DocumentReference", []string{"binary-b1", "binary-b3", "dr1"}, nil},
		{"patient, _type=Binary", "/Patient/$export?_type=Binary", []string{"binary-b1", "binary-b3"}, nil},
		{"patient, _type=Patient", "/Patient/$export?_type=Patient", nil, nil},
		{"system: Binary as itself", "/$export?_type=Binary,DocumentReference", []string{"dr1"}, []string{"b-none", "b1", "b3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.download(s.poll(s.kickoff(tc.path)).Output)
			var docs, bins []string
			for _, d := range got["DocumentReference"] {
				docs = append(docs, d["id"].(string))
			}
			for _, b := range got["Binary"] {
				bins = append(bins, b["id"].(string))
			}
			sort.Strings(docs)
			sort.Strings(bins)
			if !slices.Equal(docs, tc.want) || !slices.Equal(bins, tc.binary) {
				t.Fatalf("DocumentReferences %v and Binaries %v, want %v and %v", docs, bins, tc.want, tc.binary)
			}
			for _, d := range got["DocumentReference"] {
				bid, ok := binaries[d["id"].(string)]
				if !ok {
					continue
				}
				var doc struct {
					Status  string
					Subject struct{ Reference string }
					Content []struct {
						Attachment struct{ ContentType, Data, URL string }
					}
				}
				raw, _ := json.Marshal(d)
				if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Content) != 1 {
					t.Fatalf("%s: %v %s", bid, err, raw)
				}
				// A valid R4 DocumentReference (E-FI-07).
				if _, err := resource.Parse(raw); err != nil {
					t.Errorf("%s: %v", raw, err)
				}
				r := s.do("GET", "/Binary/"+bid, nil, "Accept", "application/fhir+json")
				var bin struct {
					ContentType, Data string
					SecurityContext   struct{ Reference string }
				}
				if err := json.Unmarshal(r.body, &bin); err != nil {
					t.Fatal(err)
				}
				a := doc.Content[0].Attachment
				if doc.Status != "current" || doc.Subject.Reference != bin.SecurityContext.Reference ||
					a.ContentType != bin.ContentType || a.Data != bin.Data {
					t.Errorf("%s as %s, want status current, subject %s, and the Binary's contentType and data", bid, raw, bin.SecurityContext.Reference)
				}
				// The url is absolute and reads the Binary.
				if u, err := url.Parse(a.URL); err != nil || !u.IsAbs() {
					t.Errorf("attachment url %q is not absolute", a.URL)
				} else if r := s.do("GET", a.URL, nil, "Accept", "application/fhir+json"); r.status != 200 || !json.Valid(r.body) {
					t.Errorf("GET %s: %d", a.URL, r.status)
				} else if err := json.Unmarshal(r.body, &bin); err != nil || bin.Data != a.Data {
					t.Errorf("GET %s: not the Binary of the attachment", a.URL)
				}
			}
		})
	}

	// _since: a deleted Binary of a patient in scope is listed in deleted
	// under its DocumentReference's reference, and a changed one exported.
	first := s.poll(s.kickoff("/Group/g1/$export"))
	time.Sleep(2 * time.Millisecond)
	s.del("Binary", "b1")
	s.put("Binary", "b2", `{"resourceType":"Binary","id":"b2","contentType":"text/plain","securityContext":{"reference":"Patient/p2"},"data":"a2lsbg=="}`)
	s.del("Binary", "b3") // p3 is not in g1
	m := s.poll(s.kickoff("/Group/g1/$export?_since=" + url.QueryEscape(first.TransactionTime)))
	got := s.download(m.Output)
	if ids := ids(got); !slices.Equal(ids, []string{"DocumentReference/binary-b2"}) {
		t.Errorf("_since output %v, want the new Binary's DocumentReference", ids)
	}
	var deleted []string
	for _, bundles := range s.download(m.Deleted) {
		for _, b := range bundles {
			for _, e := range b["entry"].([]any) {
				deleted = append(deleted, e.(map[string]any)["request"].(map[string]any)["url"].(string))
			}
		}
	}
	if !slices.Equal(deleted, []string{"DocumentReference/binary-b1"}) {
		t.Errorf("_since deleted %v, want DocumentReference/binary-b1", deleted)
	}
}

func TestBinaryDocID(t *testing.T) {
	long := "x123456789012345678901234567890123456789012345678901234567890abc" // 64
	for _, tc := range []struct{ id, want string }{
		{"b1", "binary-b1"},
		{long[:57], "binary-" + long[:57]},
	} {
		if got := binaryDocID(tc.id); got != tc.want {
			t.Errorf("binaryDocID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
	a, b := binaryDocID(long), binaryDocID(long[:63]+"d")
	if len(a) > 64 || a == b || a != binaryDocID(long) {
		t.Errorf("long ids: %q and %q: want distinct, stable, at most 64 characters", a, b)
	}
}

// TestBinaryNeedsBinaryScope: Binaries are exported only to a grant that
// may read Binary (E-KO-08): without it the DocumentReference files hold
// the stored ones alone, and _type=Binary is refused.
func TestBinaryNeedsBinaryScope(t *testing.T) {
	s := newServer(t, Config{Authorizer: tokens{
		"docs": {Client: "docs", Types: []string{"DocumentReference", "Patient"}},
		"all":  {Client: "all"},
	}})
	seed(s)
	s.put("Binary", "b1", `{"resourceType":"Binary","id":"b1","contentType":"text/plain","securityContext":{"reference":"Patient/p1"},"data":"a2lsbg=="}`)
	s.put("DocumentReference", "dr1", `{"resourceType":"DocumentReference","id":"dr1","status":"current","subject":{"reference":"Patient/p1"},"content":[{"attachment":{"contentType":"text/plain","data":"a2lsbg=="}}]}`)
	for _, tc := range []struct {
		token string
		want  []string
	}{
		{"docs", []string{"DocumentReference/dr1"}},
		{"all", []string{"DocumentReference/binary-b1", "DocumentReference/dr1"}},
	} {
		h := []string{"Authorization", "Bearer " + tc.token}
		m := s.poll(s.kickoff("/Patient/$export?_type=DocumentReference", h...), h...)
		if got := ids(s.download(m.Output, h...)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: exported %v, want %v", tc.token, got, tc.want)
		}
	}
	r := s.do("GET", "/Patient/$export?_type=Binary", nil, append(slices.Clone(kickoffHeaders), "Authorization", "Bearer docs")...)
	expectOutcome(t, r, 403, "_type=Binary for a grant without Binary")
}
