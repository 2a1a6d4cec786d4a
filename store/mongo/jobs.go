package mongo

import (
	"context"
	"errors"
	"fmt"
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
// job_chunks: the files' contents in numbered chunks ({job, file, n,
// data}, the GridFS layout: files are written and served a chunk at a
// time, never held whole). Kiln keeps its own chunks collection rather
// than GridFS proper, although the driver's GridFSBucket works against
// FerretDB v1.24.2 as well (upload, download by id and name, delete:
// checked): a GridFS file is one upload stream of chunks of exactly
// chunkSize bytes (the driver refuses to read others, ErrWrongSize),
// visible once its files document is written; store.Jobs writes
// numbered chunks of whole NDJSON lines, of varying size, each only while
// the job's owner holds it (checked before and after), and a take-over
// rewrites the same chunk numbers. GridFS would need fixed-size chunks
// from the export writer and one upload per file and attempt: a change
// of the store.Jobs contract both backends implement. Deleting a job
// deletes its chunks and claims; the export service deletes expired jobs
// (fhir/bulk).
const (
	jobsName   = "jobs"
	claimsName = "job_claims"
	chunksName = "job_chunks"
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
	return s.createMissing(ctx, s.chunks, []mongo.IndexModel{
		{Keys: bson.D{{Key: "job", Value: 1}, {Key: "file", Value: 1}, {Key: "n", Value: 1}}},
	})
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
	if _, err := s.chunks.DeleteMany(ctx, bson.D{{Key: "job", Value: id}}); err != nil {
		return s.mapErr(ctx, err)
	}
	if _, err := s.claims.DeleteMany(ctx, bson.D{{Key: "job", Value: id}}); err != nil {
		return s.mapErr(ctx, err)
	}
	return nil
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
// Writing a chunk again replaces it. Ownership is checked again after the
// write: a worker whose job was deleted meanwhile removes what it left
// (ErrNotFound), and one that lost the job is told so
// (ErrVersionConflict). A chunk a stalled owner wrote after the take-over
// stays: the new owner reads the same snapshot in the same order, so it
// writes that chunk too, with the same content, and replaces it. (The
// chunk is not taken back, since by then it may hold the new owner's
// write.)
func (s *Store) PutChunk(ctx context.Context, job, owner, file string, n int, data []byte) error {
	if err := s.owned(ctx, job, owner); err != nil {
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, err)
	}
	key := bson.D{{Key: "job", Value: job}, {Key: "file", Value: file}, {Key: "n", Value: n}}
	_, err := s.chunks.UpdateOne(ctx, key,
		bson.D{{Key: "$set", Value: bson.D{{Key: "data", Value: binary(data)}, {Key: "owner", Value: owner}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
	}
	switch err := s.owned(ctx, job, owner); {
	case errors.Is(err, store.ErrNotFound):
		_ = s.dropJobData(context.WithoutCancel(ctx), job)
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, err)
	case err != nil:
		return fmt.Errorf("mongo: put chunk %s/%s/%d: %w", job, file, n, err)
	}
	return nil
}

// Chunk reads chunk n of a job's file; ErrNotFound past its last chunk.
func (s *Store) Chunk(ctx context.Context, job, file string, n int) ([]byte, error) {
	var d struct {
		Data bson.Binary `bson:"data"`
	}
	err := s.chunks.FindOne(ctx, bson.D{{Key: "job", Value: job}, {Key: "file", Value: file}, {Key: "n", Value: n}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("mongo: chunk %s/%s/%d: %w", job, file, n, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
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
	if _, err := s.chunks.DeleteMany(ctx, bson.D{{Key: "job", Value: job}}); err != nil {
		return fmt.Errorf("mongo: delete chunks of %s: %w", job, s.mapErr(ctx, err))
	}
	return nil
}
