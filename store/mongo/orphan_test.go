package mongo_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// TestOrphanVersion: without transactions a change is two writes, the
// version document first (the arbiter, write.go) and then the current
// document. A writer killed between them (kill -9 during `kiln import`)
// leaves a version nobody could write again: every later writer of that
// version lost its insert. An orphan old enough that its writer cannot be
// alive is taken back and the version written; a young one is a writer
// in flight and still wins the conflict.
func TestOrphanVersion(t *testing.T) {
	srv := mongotest.Start(t)
	s := openStore(t, srv)
	if s.Transactions {
		t.Skip("a deployment with transactions writes a version and its current document together: no orphans")
	}
	create(t, s, "Patient", "orphaned", "")

	c, err := driver.Connect(options.Client().ApplyURI(srv.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	versions := c.Database(s.Database()).Collection("versions")
	// What a writer killed after its first write leaves: version n, the
	// current document still at n-1.
	orphan := func(v int64, wt time.Time) {
		t.Helper()
		_, err := versions.InsertOne(t.Context(), bson.D{
			{Key: "_id", Value: "Patient/orphaned/" + string(rune('0'+v))},
			{Key: "type", Value: "Patient"}, {Key: "id", Value: "orphaned"}, {Key: "v", Value: v},
			{Key: "lu", Value: wt.UnixMicro()}, {Key: "m", Value: "PUT"}, {Key: "wt", Value: wt.UnixMicro()},
			{Key: "until", Value: int64(math.MaxInt64)},
			{Key: "body", Value: bson.Binary{Data: []byte(`{"resourceType":"Patient","id":"orphaned"}`)}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	update := func(v int64) error {
		body := []byte(`{"resourceType":"Patient","id":"orphaned","meta":{"versionId":"` + string(rune('0'+v)) + `"},"active":true}`)
		return s.Commit(t.Context(), store.Change{Type: "Patient", ID: "orphaned", Version: v, LastUpdated: time.Now().UTC(),
			Method: store.MethodPut, Body: body})
	}

	orphan(2, time.Now().Add(-time.Hour))
	if err := update(2); err != nil {
		t.Fatalf("update over an hour-old orphan: %v, want it taken back and the update applied", err)
	}
	got, err := s.VRead(t.Context(), "Patient", "orphaned", 2)
	if err != nil || string(got.Body) != `{"resourceType":"Patient","id":"orphaned","meta":{"versionId":"2"},"active":true}` {
		t.Fatalf("version 2: %s %v, want the update's body", got.Body, err)
	}
	cur, err := s.Read(t.Context(), "Patient", "orphaned")
	if err != nil || cur.Version != 2 {
		t.Fatalf("current: version %d %v, want 2", cur.Version, err)
	}

	// A young version document may be a live writer's, about to move the
	// current document: the other writer loses.
	orphan(3, time.Now())
	err = update(3)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Current < 3 {
		t.Fatalf("update over a version written just now: %v, want a conflict naming version 3", err)
	}
	if n, err := versions.CountDocuments(t.Context(), bson.D{{Key: "type", Value: "Patient"}, {Key: "id", Value: "orphaned"}}); err != nil || n != 3 {
		t.Fatalf("%d version documents (%v), want 3: the young one kept", n, err)
	}
}
