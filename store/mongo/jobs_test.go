package mongo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/store"
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

// TestJobFilesGridFS: export files are GridFS proper (issue 7: "bulk
// export jobs and their files (GridFS)"), so any driver or mongofiles
// reads them: each numbered chunk is a GridFS file "<job>/<file>/<n>"
// with metadata {job, file, n, owner}. A rewrite leaves one file of that
// name; deleting the job deletes its files, their GridFS chunks (those of
// an upload that never completed too) and any chunks from before GridFS,
// which Chunk still reads.
func TestJobFilesGridFS(t *testing.T) {
	srv := mongotest.Start(t)
	s := openStore(t, srv)
	ctx := t.Context()
	c, err := driver.Connect(options.Client().ApplyURI(srv.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	db := c.Database(s.Database())
	bucket := db.GridFSBucket(options.GridFSBucket().SetName("job_files"))
	files, chunks, legacy := db.Collection("job_files.files"), db.Collection("job_files.chunks"), db.Collection("job_chunks")

	now := time.Now()
	for _, id := range []string{"gx", "gx/y"} { // "gx/y" shares "gx"'s text prefix; deleting gx leaves it
		if err := s.CreateJob(ctx, store.Job{ID: id, Kind: "export", State: store.JobQueued, Created: now, Spec: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if j, err := s.ClaimJob(ctx, "export", "w1", now, time.Minute); err != nil || j.ID != id {
			t.Fatalf("claim %s: %+v, %v", id, j, err)
		}
	}
	// Larger than a GridFS chunk (255 KiB): the file spans several.
	big := bytes.Repeat([]byte(`{"resourceType":"Patient"}`+"\n"), 40_000)
	for _, c := range []struct {
		job, file string
		n         int
		data      []byte
	}{{"gx", "Patient", 0, big}, {"gx", "Patient", 1, []byte("first\n")}, {"gx", "Patient", 1, []byte("second\n")},
		{"gx", "Observation", 0, []byte{}}, {"gx/y", "Patient", 0, []byte("kept\n")}} {
		if err := s.PutChunk(ctx, c.job, "w1", c.file, c.n, c.data); err != nil {
			t.Fatal(err)
		}
	}

	for _, want := range []struct {
		name string
		data []byte
	}{{"gx/Patient/0", big}, {"gx/Patient/1", []byte("second\n")}, {"gx/Observation/0", []byte{}}} {
		var buf bytes.Buffer
		if _, err := bucket.DownloadToStreamByName(ctx, want.name, &buf); err != nil {
			t.Errorf("the driver's GridFS reading %s: %v", want.name, err)
		} else if !bytes.Equal(buf.Bytes(), want.data) {
			t.Errorf("the driver's GridFS read %s: %d bytes, want %d", want.name, buf.Len(), len(want.data))
		}
		if n, err := files.CountDocuments(ctx, bson.D{{Key: "filename", Value: want.name}}); err != nil || n != 1 {
			t.Errorf("%d GridFS files named %s (%v), want 1 (a rewrite deletes the older)", n, want.name, err)
		}
	}
	var meta struct {
		Length   int64 `bson:"length"`
		Metadata struct {
			Job, File, Owner string
			N                int
		} `bson:"metadata"`
	}
	if err := files.FindOne(ctx, bson.D{{Key: "filename", Value: "gx/Patient/0"}}).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.Length != int64(len(big)) || meta.Metadata.Job != "gx" || meta.Metadata.File != "Patient" || meta.Metadata.N != 0 || meta.Metadata.Owner != "w1" {
		t.Errorf("files document of gx/Patient/0: %+v", meta)
	}
	if got, err := s.Chunk(ctx, "gx", "Patient", 0); err != nil || !bytes.Equal(got, big) {
		t.Errorf("Chunk gx/Patient/0: %d bytes, %v; want %d", len(got), err, len(big))
	}

	// An upload that died before its files document, and a chunk from
	// before GridFS.
	if _, err := chunks.InsertOne(ctx, bson.D{{Key: "files_id", Value: "2:gx/Patient/2/dead"}, {Key: "n", Value: 0},
		{Key: "data", Value: bson.Binary{Data: []byte("orphan")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.InsertOne(ctx, bson.D{{Key: "job", Value: "gx"}, {Key: "file", Value: "Old"}, {Key: "n", Value: 0},
		{Key: "data", Value: bson.Binary{Data: []byte("from before\n")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Chunk(ctx, "gx", "Patient", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Chunk of an upload without its files document: %v, want ErrNotFound", err)
	}
	if got, err := s.Chunk(ctx, "gx", "Old", 0); err != nil || string(got) != "from before\n" {
		t.Errorf("Chunk from job_chunks: %q, %v", got, err)
	}

	if err := s.DeleteJob(ctx, "gx"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		coll   *driver.Collection
		filter bson.D
		want   int64
	}{
		{files, bson.D{{Key: "metadata.job", Value: "gx"}}, 0},
		{chunks, bson.D{{Key: "files_id", Value: bson.D{{Key: "$regex", Value: "^2:gx/"}}}}, 0},
		{legacy, bson.D{{Key: "job", Value: "gx"}}, 0},
		{files, bson.D{{Key: "metadata.job", Value: "gx/y"}}, 1},
	} {
		if n, err := c.coll.CountDocuments(ctx, c.filter); err != nil || n != c.want {
			t.Errorf("after DeleteJob(gx): %s %v counts %d (%v), want %d", c.coll.Name(), c.filter, n, err, c.want)
		}
	}
	if got, err := s.Chunk(ctx, "gx/y", "Patient", 0); err != nil || string(got) != "kept\n" {
		t.Errorf("Chunk of job gx/y after deleting gx: %q, %v", got, err)
	}
}
