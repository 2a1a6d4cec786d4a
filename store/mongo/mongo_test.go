package mongo_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/storetest"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

var dbSeq atomic.Int64

// openStore opens a store on a database of its own on srv; it is dropped
// when t ends (on an external server; FerretDB's data is a temp dir).
func openStore(t testing.TB, srv *mongotest.Server) *mongo.Store {
	t.Helper()
	return openStoreWith(t, srv, mongo.Options{})
}

// openStoreWith is openStore with options o (Database and Logger are the
// helper's).
func openStoreWith(t testing.TB, srv *mongotest.Server, o mongo.Options) *mongo.Store {
	t.Helper()
	name := fmt.Sprintf("kiln_test_%d_%d", time.Now().UnixNano()%1e9, dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.Database, o.Logger = name, slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := mongo.Open(ctx, srv.URI, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if !srv.FerretDB {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Drop(ctx); err != nil {
				t.Logf("drop %s: %v", name, err)
			}
		})
	}
	return s
}

func TestStore(t *testing.T) {
	srv := mongotest.Start(t)
	// storetest closes each store itself; closing twice is harmless.
	storetest.Run(t, func(t *testing.T) store.Store { return openStore(t, srv) })
}
