package mongo_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"

	"github.com/kiln-fhir/kiln/conformance/storetest"
)

// TestTwoProcesses: two stores on one database stand for two Kiln
// processes (issue 7, scale-out); storetest runs the job claims and
// one-time records (authorization codes) across them.
func TestTwoProcesses(t *testing.T) {
	srv := mongotest.Start(t)
	a := openStore(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := mongo.Open(ctx, srv.URI, mongo.Options{Database: a.Database(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	storetest.TwoProcesses(t, a, b)
}
