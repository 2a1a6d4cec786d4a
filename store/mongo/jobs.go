package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/store"
)

// Background jobs (bulk export) and their files, so that any Kiln process
// sharing the database can run, poll and serve them.
//
// jobs: one document per job. A worker claims a job by inserting
// {_id: "<job>/<attempt>"} into job_claims, attempt being the job's
// Attempts plus one: the unique _id lets exactly one worker claim each
// attempt, on MongoDB and on FerretDB alike (FerretDB applies a
// findAndModify as a read and a write back by _id, so a lease-expired
// filter alone could hand one job to two workers there). The winner then
// marks the job running for itself. Every later write of the worker is
// conditional on owner: one that lost its lease gets
// store.ErrVersionConflict, one whose job was cancelled store.ErrNotFound.
// On MongoDB that condition is atomic. On FerretDB it is not (read, then
// write back): a stalled owner's UpdateJob that races the take-over's own
// update can hand the job back to the stalled owner; FerretDB is a test
// server, and a deployment runs on MongoDB.
//
// Files: GridFS (bucket job_files: collections job_files.files and
// job_files.chunks), written and read through the driver's GridFSBucket,
// so that mongofiles and any driver can list and read them. store.Jobs
// writes a file as numbered chunks of whole NDJSON lines (1 MiB or a
// little more), each only while the job's owner holds it, and a worker
// that takes a job over rewrites the same chunk numbers. So each numbered
// chunk is a GridFS file of its own, named "<job>/<file>/<n>", with
// metadata {job, file, n, owner}; its _id is fileID's (the job's length-
// prefixed name, the chunk's name and a fresh ObjectID: every upload is a
// file of its own, and every file and GridFS chunk of a job, even one an
// upload left behind when its process died, is found by the _id prefix).
// A GridFS file is visible once its files document is written, after its
// chunks: a reader sees a numbered chunk whole or not at all.
//
// PutChunk checks that the owner holds the job, uploads, and checks
// again; a rewrite of chunk n deletes the older files of that name once
// the new one is complete. Chunk reads the newest complete file of the
// name. Deleting a job deletes its files and claims; the export service
// deletes expired jobs (fhir/bulk).
//
// Before GridFS, chunks were documents {job, file, n, data} of the
// collection job_chunks. Chunk still reads one there when GridFS has none
// of that name, and deleting a job deletes its job_chunks too, so exports
// finished before an upgrade stay downloadable until they expire; nothing
// writes job_chunks any more.
const (
	jobsName         = "jobs"
	claimsName       = "job_claims"
	filesBucket      = "job_files"
	legacyChunksName = "job_chunks"
)

type jobDoc struct {
	ID         string      `bson:"_id"`
	Kind       string      `bson:"kind"`
	State      string      `bson:"state"`
	Owner      string      `bson:"owner"`
	LeaseUntil int64       `bson:"lease"`
	Attempts   int         `bson:"attempts"`
	Created    int64       `bson:"created"`
	Expires    int64       `bson:"expires"`
	Spec       bson.Binary `bson:"spec"`
	Progress   string      `bson:"progress"`
	Result     bson.Binary `bson:"result"`
	HasResult  bool        `bson:"hasResult"`
}

func microsOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func micros(u int64) time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.UnixMicro(u).UTC()
}

func (d *jobDoc) job() store.Job {
	j := store.Job{ID: d.ID, Kind: d.Kind, State: store.JobState(d.State), Owner: d.Owner,
		LeaseUntil: time.UnixMicro(d.LeaseUntil).UTC(), Attempts: d.Attempts, Created: time.UnixMicro(d.Created).UTC(),
		Expires: micros(d.Expires), Spec: d.Spec.Data, Progress: d.Progress}
	if j.Spec == nil {
		j.Spec = []byte{}
	}
	if d.HasResult {
		j.Result = d.Result.Data
		if j.Result == nil {
			j.Result = []byte{}
		}
	}
	return j
}

func binary(b []byte) bson.Binary {
	if b == nil {
		b = []byte{}
	}
	return bson.Binary{Data: b}
}

func (s *Store) jobIndexes(ctx context.Context) error {
	if err := s.createMissing(ctx, s.jobs, []mongo.IndexModel{
		{Keys: bson.D{{Key: "kind", Value: 1}, {Key: "state", Value: 1}, {Key: "created", Value: 1}}},
		{Keys: bson.D{{Key: "kind", Value: 1}, {Key: "created", Value: 1}}},
	}); err != nil {
		return err
	}
	if err := s.createMissing(ctx, s.claims, []mongo.IndexModel{{Keys: bson.D{{Key: "job", Value: 1}}}}); err != nil {
		return err
	}
	// The driver creates the bucket's own indexes ({filename, uploadDate}
	// and the unique {files_id, n}) before its first upload into an empty
	// bucket; Chunk's sort by uploadDate then _id uses the first.
	return nil
}

// CreateJob stores a new job; ErrVersionConflict when the id is taken.
func (s *Store) CreateJob(ctx context.Context, j store.Job) error {
	d := jobDoc{ID: j.ID, Kind: j.Kind, State: string(j.State), Owner: j.Owner, LeaseUntil: microsOf(j.LeaseUntil),
		Attempts: j.Attempts, Created: microsOf(j.Created), Expires: microsOf(j.Expires), Spec: binary(j.Spec),
		Progress: j.Progress, Result: binary(j.Result), HasResult: j.Result != nil}
	if _, err := s.jobs.InsertOne(ctx, d); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("mongo: create job %s: %w", j.ID, store.ErrVersionConflict)
		}
		return fmt.Errorf("mongo: create job %s: %w", j.ID, s.mapErr(ctx, err))
	}
	return nil
}

// Job reads a job; ErrNotFound when there is none.
func (s *Store) Job(ctx context.Context, id string) (store.Job, error) {
	var d jobDoc
	err := s.jobs.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Job{}, fmt.Errorf("mongo: job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Job{}, fmt.Errorf("mongo: job %s: %w", id, s.mapErr(ctx, err))
	}
	return d.job(), nil
}

// ClaimJob gives owner the oldest job of kind that is queued, or running
// with a lease that ended before now, as running until now+lease, with
// Attempts counted up. ErrNotFound when there is none.
func (s *Store) ClaimJob(ctx context.Context, kind, owner string, now time.Time, lease time.Duration) (store.Job, error) {
	filter := bson.D{{Key: "kind", Value: kind}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "state", Value: string(store.JobQueued)}},
		bson.D{{Key: "state", Value: string(store.JobRunning)}, {Key: "lease", Value: bson.D{{Key: "$lt", Value: now.UnixMicro()}}}},
	}}}
	cur, err := s.jobs.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}).
		SetProjection(bson.D{{Key: "attempts", Value: 1}}).SetLimit(64))
	if err != nil {
		return store.Job{}, fmt.Errorf("mongo: claim %s job: %w", kind, s.mapErr(ctx, err))
	}
	var candidates []jobDoc
	if err := cur.All(ctx, &candidates); err != nil {
		return store.Job{}, fmt.Errorf("mongo: claim %s job: %w", kind, s.mapErr(ctx, err))
	}
	for _, c := range candidates {
		attempt := c.Attempts + 1
		_, err := s.claims.InsertOne(ctx, bson.D{{Key: "_id", Value: c.ID + "/" + strconv.Itoa(attempt)},
			{Key: "job", Value: c.ID}, {Key: "owner", Value: owner}, {Key: "at", Value: now.UnixMicro()}})
		if mongo.IsDuplicateKeyError(err) {
			continue // another worker claimed this attempt
		}
		if err != nil {
			return store.Job{}, fmt.Errorf("mongo: claim %s job: %w", kind, s.mapErr(ctx, err))
		}
		res, err := s.jobs.UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}, {Key: "attempts", Value: c.Attempts}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: string(store.JobRunning)},
				{Key: "owner", Value: owner}, {Key: "lease", Value: now.Add(lease).UnixMicro()},
				{Key: "attempts", Value: attempt}}}})
		if err != nil {
			return store.Job{}, fmt.Errorf("mongo: claim %s job: %w", kind, s.mapErr(ctx, err))
		}
		if res.MatchedCount == 0 {
			continue // cancelled meanwhile
		}
		j, err := s.Job(ctx, c.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		return j, err
	}
	if err := ctx.Err(); err != nil {
		return store.Job{}, err
	}
	return store.Job{}, fmt.Errorf("mongo: claim %s job: %w", kind, store.ErrNotFound)
}

// UpdateJob writes j's state, lease, expiry, progress and result, if
// j.Owner still holds the job: ErrNotFound when the job is gone,
// ErrVersionConflict when another owner holds it.
func (s *Store) UpdateJob(ctx context.Context, j store.Job) error {
	res, err := s.jobs.UpdateOne(ctx, bson.D{{Key: "_id", Value: j.ID}, {Key: "owner", Value: j.Owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: string(j.State)},
			{Key: "lease", Value: microsOf(j.LeaseUntil)}, {Key: "expires", Value: microsOf(j.Expires)},
			{Key: "progress", Value: j.Progress}, {Key: "result", Value: binary(j.Result)},
			{Key: "hasResult", Value: j.Result != nil}}}})
	if err != nil {
		return fmt.Errorf("mongo: update job %s: %w", j.ID, s.mapErr(ctx, err))
	}
	if res.MatchedCount == 1 {
		return nil
	}
	if _, err := s.Job(ctx, j.ID); err != nil {
		return fmt.Errorf("mongo: update job %s: %w", j.ID, err)
	}
	return fmt.Errorf("mongo: update job %s: %w", j.ID, store.ErrVersionConflict)
}

// DeleteJob removes a job, then its files and claims; ErrNotFound when
// there was no such job. A chunk written by a worker racing the delete is
// removed by that worker (PutChunk).
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	res, err := s.jobs.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("mongo: delete job %s: %w", id, s.mapErr(ctx, err))
	}
	if err := s.dropJobData(ctx, id); err != nil {
		return fmt.Errorf("mongo: delete job %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("mongo: delete job %s: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) dropJobData(ctx context.Context, id string) error {
	if err := s.dropFiles(ctx, id); err != nil {
		return err
	}
	if _, err := s.claims.DeleteMany(ctx, bson.D{{Key: "job", Value: id}}); err != nil {
		return s.mapErr(ctx, err)
	}
	return nil
}

// dropFiles deletes every file of a job: the files documents first, so
// that no reader finds a file whose chunks are going, then the GridFS
// chunks (those of uploads that never completed too), then any chunks
// from before GridFS.
func (s *Store) dropFiles(ctx context.Context, job string) error {
	prefix := bson.D{{Key: "$regex", Value: "^" + regexp.QuoteMeta(jobFilePrefix(job))}}
	if _, err := s.files.GetFilesCollection().DeleteMany(ctx, bson.D{{Key: "_id", Value: prefix}}); err != nil {
		return s.mapErr(ctx, err)
	}
	if _, err := s.files.GetChunksCollection().DeleteMany(ctx, bson.D{{Key: "files_id", Value: prefix}}); err != nil {
		return s.mapErr(ctx, err)
	}
	if _, err := s.legacyChunks.DeleteMany(ctx, bson.D{{Key: "job", Value: job}}); err != nil {
		return s.mapErr(ctx, err)
	}
	return nil
}

// jobFilePrefix starts the _id of every file of job. The length prefix
// keeps it unambiguous whatever the job id holds (job "a" and job "a/b").
func jobFilePrefix(job string) string { return strconv.Itoa(len(job)) + ":" + job + "/" }

// fileName is the GridFS filename of chunk n of a job's file.
func fileName(job, file string, n int) string { return job + "/" + file + "/" + strconv.Itoa(n) }

// fileID is the _id of one upload of chunk n of a job's file.
func fileID(job, file string, n int) string {
	return jobFilePrefix(job) + file + "/" + strconv.Itoa(n) + "/" + bson.NewObjectID().Hex()
}

// Jobs lists the jobs of kind without their spec, progress and result,
// oldest first.
func (s *Store) Jobs(ctx context.Context, kind string) ([]store.Job, error) {
	cur, err := s.jobs.Find(ctx, bson.D{{Key: "kind", Value: kind}}, options.Find().
		SetSort(bson.D{{Key: "kind", Value: 1}, {Key: "created", Value: 1}, {Key: "_id", Value: 1}}).
		SetProjection(bson.D{{Key: "spec", Value: 0}, {Key: "progress", Value: 0}, {Key: "result", Value: 0}}))
	if err != nil {
		return nil, fmt.Errorf("mongo: list %s jobs: %w", kind, s.mapErr(ctx, err))
	}
	var docs []jobDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: list %s jobs: %w", kind, s.mapErr(ctx, err))
	}
	out := make([]store.Job, 0, len(docs))
	for i := range docs {
		docs[i].HasResult = false
		out = append(out, docs[i].job())
	}
	return out, nil
}

// owned checks that owner holds job: ErrNotFound when it is gone,
// ErrVersionConflict when another owner holds it.
func (s *Store) owned(ctx context.Context, job, owner string) error {
	j, err := s.Job(ctx, job)
	if err != nil {
		return err
	}
	if j.Owner != owner {
		return store.ErrVersionConflict
	}
	return nil
}

// PutChunk stores chunk n of a job's file, if owner still holds the job.
// Writing a chunk again replaces it: the new file is uploaded whole, then
// the older files of that name are deleted. Ownership is checked again
// after the upload: a worker whose job was deleted meanwhile removes what
// it left (ErrNotFound), and one that lost the job is told so
// (ErrVersionConflict). A chunk a stalled owner wrote after the take-over
// stays: the new owner reads the same snapshot in the same order, so it
// writes that chunk too, with the same content. (It is not taken back,
// since by then the newest file of that name may be the new owner's.)
func (s *Store) PutChunk(ctx context.Context, job, owner, file string, n int, data []byte) error {
	if err := s.owned(ctx, job, owner); err != nil {
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, err)
	}
	name := fileName(job, file, n)
	id := fileID(job, file, n)
	if err := s.upload(ctx, id, name, bson.D{{Key: "job", Value: job}, {Key: "file", Value: file},
		{Key: "n", Value: n}, {Key: "owner", Value: owner}}, data); err != nil {
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
	}
	switch err := s.owned(ctx, job, owner); {
	case errors.Is(err, store.ErrNotFound):
		_ = s.dropJobData(context.WithoutCancel(ctx), job)
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, err)
	case err != nil:
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, err)
	}
	// The older uploads of this chunk (a rewrite; an attempt of a worker
	// that lost the job).
	cur, err := s.files.GetFilesCollection().Find(ctx, bson.D{{Key: "filename", Value: name}, {Key: "_id", Value: bson.D{{Key: "$ne", Value: id}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
	}
	var older []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &older); err != nil {
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
	}
	for _, o := range older {
		if err := s.files.Delete(ctx, o.ID); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
			return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
		}
	}
	return nil
}

// upload writes data as the GridFS file id. The bucket's check for its
// indexes before a first upload is not safe for concurrent use, hence the
// lock around opening the stream; the writes themselves run unlocked. A
// failed upload takes back the chunks it wrote (Abort).
func (s *Store) upload(ctx context.Context, id, name string, meta bson.D, data []byte) error {
	s.uploadMu.Lock()
	us, err := s.files.OpenUploadStreamWithID(ctx, id, name, options.GridFSUpload().SetMetadata(meta))
	s.uploadMu.Unlock()
	if err != nil {
		return err
	}
	if _, err := us.Write(data); err != nil {
		_ = us.Abort()
		return err
	}
	if err := us.Close(); err != nil {
		_ = us.Abort()
		return err
	}
	return nil
}

// Chunk reads chunk n of a job's file, the newest complete upload of it;
// ErrNotFound past its last chunk.
func (s *Store) Chunk(ctx context.Context, job, file string, n int) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		data, err := s.readChunk(ctx, job, file, n)
		// A file deleted while it was read (a rewrite replaced it, the
		// job went): read the name again.
		if attempt < 3 && (errors.Is(err, mongo.ErrFileNotFound) || errors.Is(err, mongo.ErrMissingChunk)) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("mongo: chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
		}
		return data, nil
	}
}

func (s *Store) readChunk(ctx context.Context, job, file string, n int) ([]byte, error) {
	var f struct {
		ID string `bson:"_id"`
	}
	err := s.files.GetFilesCollection().FindOne(ctx, bson.D{{Key: "filename", Value: fileName(job, file, n)}},
		options.FindOne().SetSort(bson.D{{Key: "uploadDate", Value: -1}, {Key: "_id", Value: -1}}).
			SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&f)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return s.legacyChunk(ctx, job, file, n)
	}
	if err != nil {
		return nil, err
	}
	ds, err := s.files.OpenDownloadStream(ctx, f.ID)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	b := bytes.NewBuffer(make([]byte, 0, ds.GetFile().Length))
	if _, err := b.ReadFrom(ds); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// legacyChunk reads chunk n of a job's file from job_chunks, where chunks
// were kept before GridFS.
func (s *Store) legacyChunk(ctx context.Context, job, file string, n int) ([]byte, error) {
	var d struct {
		Data bson.Binary `bson:"data"`
	}
	err := s.legacyChunks.FindOne(ctx, bson.D{{Key: "job", Value: job}, {Key: "file", Value: file}, {Key: "n", Value: n}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if d.Data.Data == nil {
		return []byte{}, nil
	}
	return d.Data.Data, nil
}

// DeleteChunks removes every file of a job, if owner holds it: a worker
// that takes a job over starts its files afresh.
func (s *Store) DeleteChunks(ctx context.Context, job, owner string) error {
	if err := s.owned(ctx, job, owner); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrVersionConflict) {
			return nil // as the embedded store: nothing of the job is this owner's to delete
		}
		return fmt.Errorf("mongo: delete chunks of %s: %w", job, err)
	}
	if err := s.dropFiles(ctx, job); err != nil {
		return fmt.Errorf("mongo: delete chunks of %s: %w", job, err)
	}
	return nil
}
