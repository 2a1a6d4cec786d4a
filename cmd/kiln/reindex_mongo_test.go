package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// TestReindexCommandOnMongo: `kiln reindex --mongo-uri` rebuilds the
// index entries of resources whose entries were emptied behind the
// store's back (the ix array of their documents), and searches find them
// again.
func TestReindexCommandOnMongo(t *testing.T) {
	srv := mongotest.Start(t)
	db := fmt.Sprintf("kiln_reindex_%d", time.Now().UnixNano())
	k := startKilnMongo(t, srv.URI, db)
	c := k.client(t)
	for _, id := range []string{"m1", "m2", "m3"} {
		if r := c.Do("PUT", "/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","name":[{"family":"Rebuilt`+id+`"}]}`)); r.Status != 201 {
			t.Fatalf("PUT Patient/%s: %d %s", id, r.Status, r.Body)
		}
	}
	found := func(k *kiln) int {
		t.Helper()
		r := k.client(t).Do("GET", "/Patient?family=rebuilt&_total=accurate", nil)
		if r.Status != 200 {
			t.Fatalf("search: %d %s", r.Status, r.Body)
		}
		n, _ := r.JSON(t)["total"].(json.Number)
		total, _ := n.Int64()
		return int(total)
	}
	if n := found(k); n != 3 {
		t.Fatalf("family=rebuilt before: %d, want 3", n)
	}
	k.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := mongodrv.Connect(options.Client().ApplyURI(srv.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(context.Background())
	res, err := cl.Database(db).Collection("resources").UpdateMany(ctx, bson.D{{Key: "type", Value: "Patient"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "ix", Value: bson.A{}}}}})
	if err != nil || res.MatchedCount != 3 {
		t.Fatalf("emptying the Patients' index entries: %v, %+v", err, res)
	}
	k = startKilnMongo(t, srv.URI, db)
	if n := found(k); n != 0 {
		t.Fatalf("family=rebuilt with the entries emptied: %d, want 0", n)
	}
	k.stop()

	rx := spawn(t, nil, "reindex", "--mongo-uri", srv.URI, "--mongo-db", db, "--type", "Patient")
	if err := rx.wait(2 * time.Minute); err != nil {
		t.Fatalf("kiln reindex: %v\n%s", err, rx.logs())
	}
	for _, want := range []string{"reindexing", "100%", "reindexed 1 types", "3 resources read, 3 updated"} {
		if !strings.Contains(rx.logs(), want) {
			t.Errorf("kiln reindex output lacks %q:\n%s", want, rx.logs())
		}
	}
	k = startKilnMongo(t, srv.URI, db)
	if n := found(k); n != 3 {
		t.Errorf("family=rebuilt after kiln reindex: %d, want 3", n)
	}
}
