package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

var at = time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)

// create commits version 1 of a resource with its index entries.
func create(t *testing.T, s store.Store, typ, id, members string) store.Change {
	t.Helper()
	body := fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"1","lastUpdated":"2024-06-01T10:00:00Z"}`, typ, id)
	if members != "" {
		body = append(append(body, ','), members...)
	}
	body = append(body, '}')
	ix, err := search.Extract(typ, body)
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	c := store.Change{Type: typ, ID: id, Version: 1, LastUpdated: at, Method: store.MethodPost, Body: body, Index: ix}
	if err := s.Commit(t.Context(), c); err != nil {
		t.Fatalf("Commit %s/%s: %v", typ, id, err)
	}
	return c
}

func ids(t *testing.T, s store.Store, q search.Query) []string {
	t.Helper()
	q.Count = 100
	p, err := s.Search(t.Context(), &q)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	var out []string
	for _, r := range p.Matches {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out
}

// rawDoc reads a stored document as MongoDB tools see it.
func rawDoc(t *testing.T, srv *mongotest.Server, s *mongo.Store, coll, id string) bson.M {
	t.Helper()
	c, err := driver.Connect(options.Client().ApplyURI(srv.URI).SetBSONOptions(&options.BSONOptions{DefaultDocumentM: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	var m bson.M
	if err := c.Database(s.Database()).Collection(coll).FindOne(t.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&m); err != nil {
		t.Fatalf("find %s %s: %v", coll, id, err)
	}
	return m
}

// TestHostileValues: search values shaped like MongoDB operators or
// regular expressions are data: stored as written, found only by
// themselves, never interpreted (search.html#string, #token).
func TestHostileValues(t *testing.T) {
	srv := mongotest.Start(t)
	s := openStore(t, srv)
	hostile := []string{`{"$where":"sleep(1000) || true"}`, `{"$ne":null}`, `$ne`, `$regex`, `.*`, `^a+$`, `(`, `[`, `\`, `a|b`, `{"$gt":""}`}
	for i, v := range hostile {
		q := strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`)
		create(t, s, "Patient", fmt.Sprintf("h%d", i), fmt.Sprintf(`"name":[{"family":"%s"}],"identifier":[{"system":"urn:x","value":"%s"}]`, q, q))
	}
	create(t, s, "Patient", "plain", `"name":[{"family":"Abbott"}],"identifier":[{"system":"urn:x","value":"a"}]`)
	for i, v := range hostile {
		want := []string{fmt.Sprintf("h%d", i)}
		// A value that is a prefix of another hostile value finds that one too.
		for j, w := range hostile {
			if j != i && strings.HasPrefix(search.Fold(w), search.Fold(v)) {
				want = append(want, fmt.Sprintf("h%d", j))
			}
		}
		slices.Sort(want)
		t.Run(v, func(t *testing.T) {
			str := search.Query{Types: []string{"Patient"}, Filter: []search.Clause{{Param: "family", Type: search.String,
				Values: []search.Value{{Raw: v, Text: search.Fold(v)}}}}}
			if got := ids(t, s, str); !slices.Equal(got, want) {
				t.Errorf("family=%s: %q, want %q", v, got, want)
			}
			contains := str
			contains.Filter = []search.Clause{{Param: "family", Type: search.String, Modifier: "contains",
				Values: []search.Value{{Raw: v, Text: search.Fold(v)}}}}
			if got := ids(t, s, contains); !slices.Contains(got, want[0]) || slices.Contains(got, "plain") {
				t.Errorf("family:contains=%s: %q", v, got)
			}
			tok := search.Query{Types: []string{"Patient"}, Filter: []search.Clause{{Param: "identifier", Type: search.Token,
				Values: []search.Value{{Raw: v, Code: v}}}}}
			if got := ids(t, s, tok); !slices.Equal(got, want[:1]) && !slices.Equal(got, []string{fmt.Sprintf("h%d", i)}) {
				t.Errorf("identifier=%s: %q, want h%d", v, got, i)
			}
			id := search.Query{Types: []string{"Patient"}, Filter: []search.Clause{{Param: "_id", Type: search.Token,
				Values: []search.Value{{Raw: v, Code: v}}}}}
			if got := ids(t, s, id); len(got) != 0 {
				t.Errorf("_id=%s: %q, want none", v, got)
			}
		})
	}
}

// TestIDsDifferingInCase: ids are case-sensitive (FHIR ids are), so ids
// equal after case folding are different resources, read and searched
// apart.
func TestIDsDifferingInCase(t *testing.T) {
	srv := mongotest.Start(t)
	s := openStore(t, srv)
	for _, id := range []string{"abc", "ABC", "Abc"} {
		create(t, s, "Patient", id, `"gender":"other"`)
	}
	for _, id := range []string{"abc", "ABC", "Abc"} {
		r, err := s.Read(t.Context(), "Patient", id)
		if err != nil || r.ID != id {
			t.Errorf("Read %s: %s, %v", id, r.ID, err)
		}
		q := search.Query{Types: []string{"Patient"}, Filter: []search.Clause{{Param: "_id", Type: search.Token,
			Values: []search.Value{{Raw: id, Code: id}}}}}
		if got := ids(t, s, q); !slices.Equal(got, []string{id}) {
			t.Errorf("_id=%s: %q", id, got)
		}
	}
	if got := ids(t, s, search.Query{Types: []string{"Patient"}}); len(got) != 3 {
		t.Errorf("all: %q", got)
	}
}

// TestNativeDocuments: a resource is a native document analysts can query
// (decimal precision kept where the server has Decimal128; keys MongoDB
// reserves escaped), and reads serve the stored bytes exactly.
func TestNativeDocuments(t *testing.T) {
	srv := mongotest.Start(t)
	s := openStore(t, srv)
	c := create(t, s, "Observation", "dec", `"status":"final","code":{"text":"x"},`+
		`"valueQuantity":{"value":1.50,"unit":"mg"},`+
		`"extension":[{"url":"http://example.org/a.b$c","valueString":"v"}],"_status":{"extension":[{"url":"urn:x","valueCode":"y"}]}`)
	got, err := s.Read(t.Context(), "Observation", "dec")
	if err != nil || string(got.Body) != string(c.Body) {
		t.Fatalf("Read: %s, %v; want the stored bytes", got.Body, err)
	}
	m := rawDoc(t, srv, s, "resources", "Observation/dec")
	res, ok := m["res"].(bson.M)
	if !ok {
		t.Fatalf("no native document: %v", m)
	}
	if res["resourceType"] != "Observation" || res["status"] != "final" {
		t.Errorf("res = %v", res)
	}
	value := res["valueQuantity"].(bson.M)["value"]
	if srv.FerretDB {
		t.Logf("FerretDB has no Decimal128: value %#v is a double there; the body keeps 1.50", value)
		if value != 1.5 {
			t.Errorf("value = %#v, want 1.5", value)
		}
	} else if d, ok := value.(bson.Decimal128); !ok || d.String() != "1.50" {
		t.Errorf("value = %#v, want Decimal128 1.50", value)
	}
	// The version document carries the same.
	v := rawDoc(t, srv, s, "versions", "Observation/dec/1")
	if _, ok := v["res"].(bson.M); !ok {
		t.Errorf("version without native document: %v", v)
	}

	// Keys with '.' and '$' are stored (escaped) and the body is intact.
	weird := []byte(`{"resourceType":"Basic","id":"k","a.b":{"$c":1,"d%":2},"$where":"x"}`)
	if err := s.Commit(t.Context(), store.Change{Type: "Basic", ID: "k", Version: 1, LastUpdated: at,
		Method: store.MethodPost, Body: weird}); err != nil {
		t.Fatalf("Commit keys with . and $: %v", err)
	}
	r, err := s.Read(t.Context(), "Basic", "k")
	if err != nil || string(r.Body) != string(weird) {
		t.Errorf("Read: %s, %v", r.Body, err)
	}
	res = rawDoc(t, srv, s, "resources", "Basic/k")["res"].(bson.M)
	if _, ok := res["a%2Eb"].(bson.M)["%24c"]; !ok || res["%24where"] != "x" {
		t.Errorf("escaped keys: %v", res)
	}
}

// TestLargeDocuments: a body close to MongoDB's 16 MiB document limit is
// kept whole (without a native copy); one past it is refused, and nothing
// is written.
func TestLargeDocuments(t *testing.T) {
	if testing.Short() {
		t.Skip("moves tens of megabytes")
	}
	srv := mongotest.Start(t)
	// Writing 10 MB through FerretDB's SQLite handler can take longer
	// than the default 5 s operation timeout on a loaded machine.
	s := openStoreWith(t, srv, mongo.Options{Timeout: time.Minute})
	pad := strings.Repeat("x", 10<<20)
	c := create(t, s, "Basic", "big", `"code":{"text":"big"},"text":{"status":"generated","div":"<div>`+pad+`</div>"}`)
	r, err := s.Read(t.Context(), "Basic", "big")
	if err != nil || string(r.Body) != string(c.Body) {
		t.Fatalf("Read: %d bytes, %v; want %d", len(r.Body), err, len(c.Body))
	}
	q := search.Query{Types: []string{"Basic"}, Filter: []search.Clause{{Param: "_id", Type: search.Token, Values: []search.Value{{Code: "big"}}}}}
	if got := ids(t, s, q); !slices.Equal(got, []string{"big"}) {
		t.Errorf("search: %q", got)
	}
	huge := store.Change{Type: "Basic", ID: "huge", Version: 1, LastUpdated: at, Method: store.MethodPost,
		Body: []byte(`{"resourceType":"Basic","id":"huge","x":"` + strings.Repeat("y", 16<<20) + `"}`)}
	if err := s.Commit(t.Context(), huge); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("a 16 MiB body: %v, want ErrTooLarge", err)
	}
	if _, err := s.Read(t.Context(), "Basic", "huge"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after the refused commit: %v, want ErrNotFound", err)
	}
}

// TestMalformedClauses: a clause shape the compiler does not know is an
// error, never an empty filter. Access control narrows searches with Any,
// All and _type (search.Clause); a part dropped silently would widen the
// result to resources the client may not see.
func TestMalformedClauses(t *testing.T) {
	srv := mongotest.Start(t)
	s := openStore(t, srv)
	create(t, s, "Patient", "p1", `"gender":"female"`)
	create(t, s, "Observation", "o1", `"status":"final","subject":{"reference":"Patient/p1"}`)
	status := search.Clause{Param: "status", Type: search.Token, Values: []search.Value{{Raw: "final", Code: "final"}}}
	isObs := search.Clause{Param: "_type", Type: search.Token, Values: []search.Value{{Raw: "Observation", Code: "Observation"}}}
	for _, tc := range []struct {
		name string
		cl   search.Clause
	}{
		{"no parameter", search.Clause{Type: search.Token, Values: status.Values}},
		{"empty all", search.Clause{All: []search.Clause{}}},
		{"any and all at once", search.Clause{Any: []search.Clause{status}, All: []search.Clause{isObs}}},
		{"all and a chain at once", search.Clause{Param: "subject", All: []search.Clause{status},
			Chain: &search.Chain{Types: []string{"Patient"}, Filter: status}}},
		{"all with a parameter", search.Clause{Param: "status", Values: status.Values, All: []search.Clause{isObs}}},
		{"any with values", search.Clause{Values: status.Values, Any: []search.Clause{isObs}}},
		{"_type with a modifier", search.Clause{Param: "_type", Type: search.Token, Modifier: "not", Values: isObs.Values}},
		{"unknown type inside all", search.Clause{All: []search.Clause{isObs, {Param: "status", Type: "bogus", Values: status.Values}}}},
		{"a shapeless part inside all inside any", search.Clause{Any: []search.Clause{{All: []search.Clause{isObs, {}}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := search.Query{Types: []string{"Observation", "Patient"}, Count: 100, Filter: []search.Clause{tc.cl}}
			p, err := s.Search(t.Context(), &q)
			if err == nil {
				t.Fatalf("Search accepted the clause and matched %d resources", len(p.Matches))
			}
		})
	}
	// The well-formed neighbours: _type confines, a system on it matches nothing.
	if got := ids(t, s, search.Query{Filter: []search.Clause{isObs}}); !slices.Equal(got, []string{"o1"}) {
		t.Errorf("_type=Observation: %v, want [o1]", got)
	}
	withSystem := search.Clause{Param: "_type", Type: search.Token, Values: []search.Value{{System: "x", HasSystem: true, Code: "Observation"}}}
	if got := ids(t, s, search.Query{Filter: []search.Clause{withSystem}}); len(got) != 0 {
		t.Errorf("_type=x|Observation: %v, want none", got)
	}
}
