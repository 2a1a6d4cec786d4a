package rest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// The SMART patient access matrix on the MongoDB backend (issue 7: the
// same server on MongoDB; issue 5's matrix): every read, search, chain,
// _has, _include/_revinclude, history and $everything attempt of patient
// A's token on patient B's record is refused or filtered there too. The
// access decisions are fhir/rest's, but what they filter is the MongoDB
// backend's answers (compartment searches, includes, history), so the
// matrix runs on both backends. FerretDB in-process, or
// KILN_TEST_MONGO_URI.

// mongoFixture is newFixture on a MongoDB database of its own, and
// whether that MongoDB is FerretDB.
func mongoFixture(t *testing.T) (*fixture, bool) {
	t.Helper()
	if testing.Short() {
		t.Skip("loads two Synthea patients into MongoDB over HTTP")
	}
	srv := mongotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// FerretDB evaluates every filter but _id over the whole collection:
	// on a loaded two-core machine a compartment or _has search can pass
	// the default 5 s operation timeout (and answer 503).
	db, err := mongo.Open(ctx, srv.URI, mongo.Options{Database: fmt.Sprintf("kiln_matrix_%d", time.Now().UnixNano()),
		Timeout: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !srv.FerretDB {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			db.Drop(ctx)
		}
		db.Close()
	})
	return newFixtureOn(t, db), srv.FerretDB
}

// TestPatientMatrixOnMongo runs TestPatientMatrix and
// TestPatientMatrixOperations on one MongoDB fixture (the matrix changes
// nothing: every write it attempts is refused).
func TestPatientMatrixOnMongo(t *testing.T) {
	f, ferret := mongoFixture(t)
	t.Run("matrix", func(t *testing.T) {
		if !ferret {
			patientMatrix(t, f, nil)
			return
		}
		// On FerretDB (seconds per search there) the reading legs — read,
		// vread, history, searches, chains, _has, _include, _revinclude —
		// on Patient and Observation, and every system-level attempt; the
		// writes and the other types run on the embedded store and on
		// KILN_TEST_MONGO_URI.
		t.Log("FerretDB: the reading attempts on Patient and Observation and the system-level ones; set " + mongotest.EnvURI + " for all")
		patientMatrix(t, f, func(typ, method, path string) bool {
			reads := method == "GET" || strings.HasSuffix(path, "/_search")
			return typ == "" || (typ == "Patient" || typ == "Observation") && reads
		})
	})
	// PATCH, $everything and $validate of B's record, refused; A's own
	// $everything holds nothing of B's. On FerretDB a $everything over the
	// whole compartment (every type, every reference parameter: an
	// aggregation scanning the collection for each) takes minutes: there
	// only the cases limited by _type or scope to one or two types.
	t.Run("operations", func(t *testing.T) {
		var leave func(string) string
		if ferret {
			leave = func(name string) string {
				if name == "_type" || name == "the patient alone" || name == "read without search: the patient alone" {
					return ""
				}
				return "FerretDB: a $everything over the whole compartment takes minutes there; set " + mongotest.EnvURI + " to run it"
			}
		}
		patientMatrixOperations(t, f, leave)
	})
}
