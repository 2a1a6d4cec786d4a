package mongotest

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestIDLookupUsesIndex: once a collection exists, SQLite plans FerretDB's
// lookup by _id (the expression of its backends/sqlite metadata.IDColumn)
// with the index idIndexes adds, and the lookup still finds the document.
// A FerretDB upgrade that changes the expression or the layout fails here
// rather than silently making every lookup a table scan again.
func TestIDLookupUsesIndex(t *testing.T) {
	s := Start(t)
	if !s.FerretDB {
		t.Skip("an external server: nothing to index")
	}
	c, err := mongo.Connect(options.Client().ApplyURI(s.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	coll := c.Database("ix").Collection("docs")
	for i := range 20 {
		if _, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: fmt.Sprint("k", i)}, {Key: "n", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	var doc struct {
		N int `bson:"n"`
	}
	if err := coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: "k7"}}).Decode(&doc); err != nil || doc.N != 7 {
		t.Fatalf("FindOne k7: %+v, %v", doc, err)
	}

	// A connection of its own for each look: an EXPLAIN on a connection
	// that read the schema before the index was added shows the plan of
	// that older schema.
	query := func(q string, args ...any) [][]any {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dir, "ix.sqlite")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out [][]any
		for rows.Next() {
			row := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range row {
				ptrs[i] = &row[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, row)
		}
		return out
	}
	table := fmt.Sprint(query(`SELECT table_name FROM _ferretdb_collections WHERE name = 'docs'`)[0][0])
	var plan string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		plan = ""
		// FerretDB's lookup by _id (backends/sqlite: Query).
		for _, row := range query(fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"k7"`) {
			plan += fmt.Sprint(row[3]) + "; "
		}
		if strings.Contains(plan, "USING INDEX "+table+"_kiln_id") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(plan, "USING INDEX "+table+"_kiln_id") {
		t.Errorf("SQLite's plan of a lookup by _id: %s, want the index %s_kiln_id", plan, table)
	}
}
