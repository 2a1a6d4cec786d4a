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

// Records (store.Records) live in one collection, records, one document
// per version of a record: {_id, kind, key, ver, val, exp}. A document is
// never updated; every change inserts the next version, and the unique
// _id (which names kind, key and ver) is the arbiter, as for resources
// (write.go): of two writers of version n+1 only one inserts it. That is
// what makes the operations atomic on every server Kiln supports —
// FerretDB, like a findAndModify, applies an update or a delete by reading
// the matching documents and then writing them back by _id, so a filter
// on the version is not a compare-and-set there. A record reads as its
// newest version; the versions it replaced are deleted after the write
// (any left behind by a crash are shadowed by the newer one).
//
// Expiry: exp is a BSON date, read as gone from that instant on (every
// read checks it), and removed by a TTL index on MongoDB (FerretDB v1 has
// no TTL indexes; there the writes of a kind purge its expired records,
// as the embedded store does).
const recordsName = "records"

// recordID is the _id of version ver of a record. The length prefix makes
// it unambiguous whatever kind and key hold.
func recordID(kind, key string, ver int64) string {
	return strconv.Itoa(len(kind)) + ":" + kind + "/" + strconv.FormatInt(ver, 10) + "/" + key
}

type recordDoc struct {
	ID   string      `bson:"_id"`
	Kind string      `bson:"kind"`
	Key  string      `bson:"key"`
	Ver  int64       `bson:"ver"`
	Val  bson.Binary `bson:"val"`
	Exp  *time.Time  `bson:"exp,omitempty"`
	// At is when this version was written: versions it replaced are
	// cleaned up only once they are older than keepReplaced (insertVersion).
	At time.Time `bson:"at"`
}

func (d *recordDoc) live(now time.Time) bool { return d.Exp == nil || d.Exp.After(now) }

func (d *recordDoc) record() store.Record {
	r := store.Record{Kind: d.Kind, Key: d.Key, Value: d.Val.Data, Version: d.Ver}
	if r.Value == nil {
		r.Value = []byte{}
	}
	if d.Exp != nil {
		r.Expires = d.Exp.UTC()
	}
	return r
}

func newRecordDoc(r store.Record, ver int64) recordDoc {
	d := recordDoc{ID: recordID(r.Kind, r.Key, ver), Kind: r.Kind, Key: r.Key, Ver: ver,
		Val: bson.Binary{Data: r.Value}, At: time.Now()}
	if d.Val.Data == nil {
		d.Val.Data = []byte{}
	}
	if !r.Expires.IsZero() {
		// BSON dates are milliseconds: rounded up, so that a record
		// never ends before the instant asked for.
		exp := r.Expires.Truncate(time.Millisecond)
		if exp.Before(r.Expires) {
			exp = exp.Add(time.Millisecond)
		}
		d.Exp = &exp
	}
	return d
}

func (s *Store) recordIndexes(ctx context.Context) error {
	models := []mongo.IndexModel{{Keys: bson.D{{Key: "kind", Value: 1}, {Key: "key", Value: 1}, {Key: "ver", Value: -1}}}}
	if !s.FerretDB {
		models = append(models, mongo.IndexModel{Keys: bson.D{{Key: "exp", Value: 1}},
			Options: options.Index().SetExpireAfterSeconds(0)})
	}
	return s.createMissing(ctx, s.records, models)
}

// latest reads the newest version of a record, live or not; nil when
// there is none.
func (s *Store) latest(ctx context.Context, kind, key string) (*recordDoc, error) {
	var d recordDoc
	err := s.records.FindOne(ctx, bson.D{{Key: "kind", Value: kind}, {Key: "key", Value: key}},
		options.FindOne().SetSort(bson.D{{Key: "ver", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, s.mapErr(ctx, err)
	}
	return &d, nil
}

// keepReplaced is how long a replaced version stays after the version
// that replaced it was written. The unique _id of (kind, key, ver) is what
// decides between writers: of two writers of version ver, one inserts it.
// That holds only while version ver, once written, stays: a writer that
// read version ver-1 and inserts ver after ver was cleaned up would win
// on a stale read. Every writer reads the newest version and inserts the
// next within one operation's timeout (seconds), so a replaced version
// kept for a minute can never be recreated that way. (An earlier version
// instead took back an insert when a newer version existed afterwards;
// that also took back wins another writer had already built on, and a
// read-modify-write counter then counted one increment twice.)
const keepReplaced = time.Minute

// insertVersion inserts version ver of r. won is false when another
// writer inserted that version first. The winner deletes the versions
// that were replaced more than keepReplaced ago.
func (s *Store) insertVersion(ctx context.Context, r store.Record, ver int64) (won bool, err error) {
	d := newRecordDoc(r, ver)
	if _, err := s.records.InsertOne(ctx, d); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return false, nil
		}
		return false, s.mapErr(ctx, err)
	}
	if ver > 2 {
		// Version v was replaced when v+1 was written: keep every
		// version whose successor is younger than keepReplaced, so only
		// versions below the oldest such successor go. Failures leave
		// them for the next write.
		old := d.At.Add(-keepReplaced)
		var succ recordDoc
		err := s.records.FindOne(ctx, bson.D{{Key: "kind", Value: r.Kind}, {Key: "key", Value: r.Key},
			{Key: "ver", Value: bson.D{{Key: "$lt", Value: ver}}}, {Key: "at", Value: bson.D{{Key: "$lte", Value: old}}}},
			options.FindOne().SetSort(bson.D{{Key: "ver", Value: -1}})).Decode(&succ)
		if err == nil {
			_, _ = s.records.DeleteMany(ctx, bson.D{{Key: "kind", Value: r.Kind}, {Key: "key", Value: r.Key},
				{Key: "ver", Value: bson.D{{Key: "$lt", Value: succ.Ver}}}})
		}
	}
	return true, nil
}

// purge removes the expired records of kind where no TTL index does it:
// the versions below an expired one first, so that removing it never
// uncovers a version it had replaced.
func (s *Store) purge(ctx context.Context, kind string) {
	if !s.FerretDB {
		return
	}
	cur, err := s.records.Find(ctx, bson.D{{Key: "kind", Value: kind},
		{Key: "exp", Value: bson.D{{Key: "$lte", Value: time.Now()}}}},
		options.Find().SetProjection(bson.D{{Key: "key", Value: 1}, {Key: "ver", Value: 1}}).SetLimit(100))
	if err != nil {
		return
	}
	var expired []recordDoc
	if err := cur.All(ctx, &expired); err != nil {
		return
	}
	for _, d := range expired {
		if _, err := s.records.DeleteMany(ctx, bson.D{{Key: "kind", Value: kind}, {Key: "key", Value: d.Key},
			{Key: "ver", Value: bson.D{{Key: "$lt", Value: d.Ver}}}}); err != nil {
			return
		}
		_, _ = s.records.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}})
	}
}

// PutRecord implements store.Records: the next version, retried until
// this writer inserts one.
func (s *Store) PutRecord(ctx context.Context, r store.Record) error {
	s.purge(ctx, r.Kind)
	for {
		top, err := s.latest(ctx, r.Kind, r.Key)
		if err != nil {
			return fmt.Errorf("mongo: put record %s/%s: %w", r.Kind, r.Key, err)
		}
		var ver int64 = 1
		if top != nil {
			ver = top.Ver + 1
		}
		won, err := s.insertVersion(ctx, r, ver)
		if err != nil {
			return fmt.Errorf("mongo: put record %s/%s: %w", r.Kind, r.Key, err)
		}
		if won {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// InsertRecord implements store.Records.
func (s *Store) InsertRecord(ctx context.Context, r store.Record) error {
	s.purge(ctx, r.Kind)
	top, err := s.latest(ctx, r.Kind, r.Key)
	if err != nil {
		return fmt.Errorf("mongo: insert record %s/%s: %w", r.Kind, r.Key, err)
	}
	var ver int64 = 1
	if top != nil {
		if top.live(time.Now()) {
			return fmt.Errorf("mongo: insert record %s/%s: %w", r.Kind, r.Key, store.ErrVersionConflict)
		}
		ver = top.Ver + 1 // over an expired record
	}
	won, err := s.insertVersion(ctx, r, ver)
	if err != nil {
		return fmt.Errorf("mongo: insert record %s/%s: %w", r.Kind, r.Key, err)
	}
	if !won {
		return fmt.Errorf("mongo: insert record %s/%s: %w", r.Kind, r.Key, store.ErrVersionConflict)
	}
	return nil
}

// GetRecord implements store.Records.
func (s *Store) GetRecord(ctx context.Context, kind, key string) (store.Record, error) {
	top, err := s.latest(ctx, kind, key)
	if err != nil {
		return store.Record{}, fmt.Errorf("mongo: get record %s/%s: %w", kind, key, err)
	}
	if top == nil || !top.live(time.Now()) {
		return store.Record{}, fmt.Errorf("mongo: get record %s/%s: %w", kind, key, store.ErrNotFound)
	}
	return top.record(), nil
}

// TakeRecord implements store.Records: the delete of the newest version
// by _id is the arbiter (a server counts one deletion of a document), so
// of two takers one deletes it and the other is told it found nothing.
func (s *Store) TakeRecord(ctx context.Context, kind, key string) (store.Record, error) {
	top, err := s.latest(ctx, kind, key)
	if err != nil {
		return store.Record{}, fmt.Errorf("mongo: take record %s/%s: %w", kind, key, err)
	}
	if top == nil || !top.live(time.Now()) {
		return store.Record{}, fmt.Errorf("mongo: take record %s/%s: %w", kind, key, store.ErrNotFound)
	}
	res, err := s.records.DeleteOne(ctx, bson.D{{Key: "_id", Value: top.ID}})
	if err != nil {
		return store.Record{}, fmt.Errorf("mongo: take record %s/%s: %w", kind, key, s.mapErr(ctx, err))
	}
	if res.DeletedCount != 1 {
		return store.Record{}, fmt.Errorf("mongo: take record %s/%s: %w", kind, key, store.ErrNotFound)
	}
	_, _ = s.records.DeleteMany(ctx, bson.D{{Key: "kind", Value: kind}, {Key: "key", Value: key},
		{Key: "ver", Value: bson.D{{Key: "$lt", Value: top.Ver}}}})
	return top.record(), nil
}

// SwapRecord implements store.Records: version r.Version+1 is inserted
// only while r.Version is the newest, and only one writer inserts it.
func (s *Store) SwapRecord(ctx context.Context, r store.Record) error {
	top, err := s.latest(ctx, r.Kind, r.Key)
	if err != nil {
		return fmt.Errorf("mongo: swap record %s/%s: %w", r.Kind, r.Key, err)
	}
	if top == nil || !top.live(time.Now()) {
		return fmt.Errorf("mongo: swap record %s/%s: %w", r.Kind, r.Key, store.ErrNotFound)
	}
	if top.Ver != r.Version {
		return fmt.Errorf("mongo: swap record %s/%s: %w", r.Kind, r.Key, store.ErrVersionConflict)
	}
	won, err := s.insertVersion(ctx, r, r.Version+1)
	if err != nil {
		return fmt.Errorf("mongo: swap record %s/%s: %w", r.Kind, r.Key, err)
	}
	if !won {
		return fmt.Errorf("mongo: swap record %s/%s: %w", r.Kind, r.Key, store.ErrVersionConflict)
	}
	return nil
}

// DeleteRecord implements store.Records.
func (s *Store) DeleteRecord(ctx context.Context, kind, key string) error {
	if _, err := s.records.DeleteMany(ctx, bson.D{{Key: "kind", Value: kind}, {Key: "key", Value: key}}); err != nil {
		return fmt.Errorf("mongo: delete record %s/%s: %w", kind, key, s.mapErr(ctx, err))
	}
	return nil
}

// ListRecords implements store.Records: the newest version of each key.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]store.Record, error) {
	cur, err := s.records.Find(ctx, bson.D{{Key: "kind", Value: kind}},
		options.Find().SetSort(bson.D{{Key: "kind", Value: 1}, {Key: "key", Value: 1}, {Key: "ver", Value: -1}}))
	if err != nil {
		return nil, fmt.Errorf("mongo: list records %s: %w", kind, s.mapErr(ctx, err))
	}
	defer cur.Close(context.WithoutCancel(ctx))
	now := time.Now()
	var out []store.Record
	last := ""
	for i := 0; cur.Next(ctx); i++ {
		var d recordDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("mongo: list records %s: %w", kind, err)
		}
		if i > 0 && d.Key == last {
			continue // a shadowed version
		}
		last = d.Key
		if d.live(now) {
			out = append(out, d.record())
		}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongo: list records %s: %w", kind, s.mapErr(ctx, err))
	}
	return out, nil
}

var _ store.Records = (*Store)(nil)
