package mongo_test

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// The MongoDB backend's read, create and search benchmarks, the
// counterparts of store/sqlite's. Against FerretDB (no KILN_TEST_MONGO_URI)
// they measure the driver and wire path over FerretDB's SQLite handler,
// not MongoDB: production figures need a real MongoDB.

const benchResources = 500

func benchObservation(i int) store.Change {
	id := fmt.Sprintf("o%d", i)
	body := fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"meta":{"versionId":"1","lastUpdated":"2024-03-01T12:00:00Z"},`+
		`"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"%d"}]},"subject":{"reference":"Patient/p%d"},`+
		`"valueQuantity":{"value":%d.5,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}`, id, i%50, i%100, i%200)
	ix, err := search.Extract("Observation", body)
	if err != nil {
		panic(err)
	}
	return store.Change{Type: "Observation", ID: id, Version: 1, LastUpdated: time.Now(), Method: store.MethodPost, Body: body, Index: ix}
}

func benchStore(b *testing.B) store.Store {
	b.Helper()
	srv := mongotest.Start(b)
	if srv.FerretDB {
		b.Log("FerretDB in-process: wire-path figures, not MongoDB production figures")
	}
	s := openStore(b, srv)
	for i := range benchResources {
		if err := s.Commit(b.Context(), benchObservation(i)); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func BenchmarkMongo(b *testing.B) {
	s := benchStore(b)
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Read(b.Context(), "Observation", fmt.Sprintf("o%d", rand.IntN(benchResources))); err != nil {
				b.Fatal(err)
			}
		}
	})
	var n atomic.Int64
	b.Run("create", func(b *testing.B) {
		for b.Loop() {
			c := benchObservation(benchResources + int(n.Add(1)))
			if err := s.Commit(b.Context(), c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("search token", func(b *testing.B) {
		for b.Loop() {
			q := search.Query{Types: []string{"Observation"}, Count: 10, Filter: []search.Clause{{Param: "code", Type: search.Token,
				Values: []search.Value{{Code: fmt.Sprint(rand.IntN(50))}}}}}
			if _, err := s.Search(b.Context(), &q); err != nil {
				b.Fatal(err)
			}
		}
	})
}
