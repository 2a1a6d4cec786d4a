package mongo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/store"
)

// Size limits. A MongoDB document holds at most 16 MiB; the body, its index
// entries and the envelope share it.
const (
	// maxNativeCopy is the largest body that also gets a native copy (res).
	maxNativeCopy = 6 << 20
	// maxBody is the largest body stored at all.
	maxBody = 15 << 20
)

// notReplaced is the until of a version nothing has replaced yet.
const notReplaced = int64(math.MaxInt64)

func currentKey(typ, id string) string { return typ + "/" + id }

// versionKey is a version's _id. Types never contain '/' and versions are
// digits, so the key is unambiguous whatever the id holds.
func versionKey(typ, id string, v int64) string {
	return typ + "/" + id + "/" + strconv.FormatInt(v, 10)
}

// Commit implements store.Resources.
func (s *Store) Commit(ctx context.Context, changes ...store.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, c := range changes {
		if c.Type == "" || c.ID == "" || c.Version < 1 {
			return fmt.Errorf("mongo: commit: change %d: type, id and a version >= 1 are required", i)
		}
		if c.Method == store.MethodDelete && c.Body != nil {
			return fmt.Errorf("mongo: commit: change %d: a delete has no body", i)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	if !s.Transactions {
		if len(changes) > 1 {
			return fmt.Errorf("mongo: commit of %d changes: %w", len(changes), store.ErrNoTransactions)
		}
		return s.resolve(ctx, s.apply(ctx, 0, &changes[0], time.Now()))
	}
	sess, err := s.client.StartSession(options.Session().SetCausalConsistency(s.causal))
	if err != nil {
		return fmt.Errorf("mongo: commit: %w", s.mapErr(ctx, err))
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	wt := time.Now()
	_, err = sess.WithTransaction(ctx, func(sc context.Context) (any, error) {
		for i := range changes {
			if err := s.apply(sc, i, &changes[i], wt); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	var lost *lostCAS
	if errors.As(err, &lost) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return s.resolve(ctx, err)
	}
	if err != nil {
		return fmt.Errorf("mongo: commit: %w", s.mapErr(ctx, err))
	}
	return nil
}

// lostCAS is a change that lost its compare-and-set, before the version
// actually current is known: inside a transaction, which a write error has
// aborted, it cannot be read; resolve reads it afterwards.
type lostCAS struct {
	index   int
	key     string
	atLeast int64
}

func (l *lostCAS) Error() string { return "version conflict" }

// resolve turns a lostCAS into the store.ConflictError naming the current
// version.
func (s *Store) resolve(ctx context.Context, err error) error {
	var lost *lostCAS
	if !errors.As(err, &lost) {
		return err
	}
	return s.conflict(ctx, lost.index, lost.key, lost.atLeast)
}

// apply writes change c (index i of its Commit): the compare-and-set on the
// current document first, then the version and the end of its
// predecessor's time as current (history _at).
func (s *Store) apply(ctx context.Context, i int, c *store.Change, wt time.Time) error {
	key := currentKey(c.Type, c.ID)
	lu := c.LastUpdated.UnixMicro()
	deleted := c.Method == store.MethodDelete
	cur := bson.D{
		{Key: "_id", Value: key},
		{Key: "type", Value: c.Type},
		{Key: "id", Value: c.ID},
		{Key: "v", Value: c.Version},
		{Key: "lu", Value: lu},
		{Key: "m", Value: string(c.Method)},
		{Key: "del", Value: deleted},
	}
	ver := bson.D{
		{Key: "_id", Value: versionKey(c.Type, c.ID, c.Version)},
		{Key: "type", Value: c.Type},
		{Key: "id", Value: c.ID},
		{Key: "v", Value: c.Version},
		{Key: "lu", Value: lu},
		{Key: "m", Value: string(c.Method)},
		{Key: "wt", Value: wt.UnixMicro()},
		{Key: "until", Value: notReplaced},
	}
	if !deleted {
		body := bson.Binary{Subtype: 0, Data: c.Body}
		if c.Body == nil {
			body.Data = []byte{}
		}
		cur = append(cur, bson.E{Key: "body", Value: body})
		ver = append(ver, bson.E{Key: "body", Value: body})
		if len(c.Body) > maxBody {
			return fmt.Errorf("mongo: commit: change %d: a body of %d bytes does not fit a MongoDB document (16 MiB): %w",
				i, len(c.Body), store.ErrTooLarge)
		}
		if len(c.Body) > maxNativeCopy {
			// Body and its native copy would not fit one 16 MiB document:
			// the body alone is kept (and served); nat marks the gap.
			cur = append(cur, bson.E{Key: "nat", Value: false})
			ver = append(ver, bson.E{Key: "nat", Value: false})
		} else if doc, ok := nativeDoc(c.Body, !s.FerretDB); ok {
			cur = append(cur, bson.E{Key: "res", Value: doc})
			ver = append(ver, bson.E{Key: "res", Value: doc})
		}
		ix, sk := indexDocs(c.Index)
		cur = append(cur, bson.E{Key: "ix", Value: ix}, bson.E{Key: "sk", Value: sk})
	} else {
		cur = append(cur, bson.E{Key: "ix", Value: bson.A{}}, bson.E{Key: "sk", Value: bson.D{}})
	}

	// The version document is the arbiter: its _id names the version, so
	// of two writers of version n only one inserts it (this holds on
	// servers whose single-document updates are not atomic, such as
	// FerretDB). The current document then moves from n-1 to n; if it was
	// not at n-1 (a version skipped, a create over an existing resource)
	// the version is taken back and the change lost.
	vkey := versionKey(c.Type, c.ID, c.Version)
	if _, err := s.versions.InsertOne(ctx, ver); err != nil {
		if !mongo.IsDuplicateKeyError(err) {
			return s.writeErr(ctx, err)
		}
		// Version n exists: current is n, or becomes n as soon as its
		// writer moves the current document — unless that writer died
		// between the two writes (kill -9 without transactions).
		reclaimed, err := s.reclaimOrphan(ctx, key, vkey, c.Version)
		if err != nil {
			return s.writeErr(ctx, err)
		}
		if !reclaimed {
			return &lostCAS{index: i, key: key, atLeast: c.Version}
		}
		if _, err := s.versions.InsertOne(ctx, ver); err != nil {
			if mongo.IsDuplicateKeyError(err) {
				return &lostCAS{index: i, key: key, atLeast: c.Version}
			}
			return s.writeErr(ctx, err)
		}
	}
	moved := true
	if c.Version == 1 {
		if _, err := s.resources.InsertOne(ctx, cur); err != nil {
			if !mongo.IsDuplicateKeyError(err) {
				return s.undo(ctx, vkey, wt.UnixMicro(), s.writeErr(ctx, err))
			}
			moved = false
		}
	} else {
		var err error
		if moved, err = s.moveCurrent(ctx, key, c.Version-1, cur); err != nil {
			return s.undo(ctx, vkey, wt.UnixMicro(), s.writeErr(ctx, err))
		}
	}
	if !moved {
		return s.undo(ctx, vkey, wt.UnixMicro(), &lostCAS{index: i, key: key})
	}
	if c.Version > 1 {
		if _, err := s.versions.UpdateOne(ctx, bson.D{{Key: "_id", Value: versionKey(c.Type, c.ID, c.Version-1)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: lu}}}}); err != nil {
			return s.writeErr(ctx, err)
		}
	}
	return nil
}

// moveCurrent replaces the current document key with cur if it is at
// version from, and reports whether it did. On MongoDB the filter {_id, v}
// is the compare-and-set, answered from the _id index. FerretDB answers
// only a filter on _id alone from an index (any other filter reads and
// decodes the whole collection: O(n) per write) and applies an update as
// a read and a write back by _id anyway, so there the version is read by
// _id and the document replaced by _id: no less atomic than FerretDB's own
// update, and the version document apply inserted first already decides
// between two writers of the same version.
func (s *Store) moveCurrent(ctx context.Context, key string, from int64, cur bson.D) (bool, error) {
	filter := bson.D{{Key: "_id", Value: key}}
	if s.FerretDB {
		var at struct {
			V int64 `bson:"v"`
		}
		err := s.resources.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "v", Value: 1}})).Decode(&at)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return false, nil
		}
		if err != nil || at.V != from {
			return false, err
		}
	} else {
		filter = append(filter, bson.E{Key: "v", Value: from})
	}
	res, err := s.resources.ReplaceOne(ctx, filter, cur)
	if err != nil {
		return false, err
	}
	return res.MatchedCount > 0, nil
}

// undo takes back the version document of a change that lost, then
// returns err. Inside a transaction the abort does it anyway. It deletes
// only its own document (the same wt): if a stall made it an orphan that
// another writer reclaimed, the version there now is the other writer's.
func (s *Store) undo(ctx context.Context, vkey string, wt int64, err error) error {
	if !s.Transactions {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		_, _ = s.versions.DeleteOne(dctx, bson.D{{Key: "_id", Value: vkey}, {Key: "wt", Value: wt}})
	}
	return err
}

// orphanAge is how old a version document must be, with the current
// document still at the version before it, to count as an orphan: its
// writer inserted it and died before moving the current document. wt is
// taken before the insert, and each of the two writes is bounded by the
// timeout, so a live writer has moved the current document by wt plus
// twice the timeout; the margin covers clock skew between Kiln processes
// (wt is the writer's clock). 15 s with the default timeout.
func (s *Store) orphanAge() time.Duration { return 2*s.timeout + 5*time.Second }

// reclaimOrphan deletes version document vkey (version v of key) when it
// is an orphan, and reports whether it did. Only a deployment without
// transactions leaves orphans: there a version and its current document
// are two writes (apply), and a process killed between them leaves a
// version nobody can write again; within a transaction both or neither
// are written. The delete is conditional on the orphan's wt, so of two
// writers reclaiming it only one deletes it and the other's insert then
// loses on the unique _id.
//
// What remains: a writer stalled longer than orphanAge between its two
// writes (a suspended process) that then moves the current document
// finds its version document gone; that version is then missing from
// history. A replica set, with transactions, has no such window.
func (s *Store) reclaimOrphan(ctx context.Context, key, vkey string, v int64) (bool, error) {
	if s.Transactions {
		return false, nil
	}
	var orphan struct {
		WT int64 `bson:"wt"`
	}
	err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: vkey}},
		options.FindOne().SetProjection(bson.D{{Key: "wt", Value: 1}})).Decode(&orphan)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return true, nil // taken back meanwhile: try again
	}
	if err != nil {
		return false, err
	}
	if time.Since(time.UnixMicro(orphan.WT)) < s.orphanAge() {
		return false, nil // its writer may be moving the current document now
	}
	var cur struct {
		V int64 `bson:"v"`
	}
	err = s.resources.FindOne(ctx, bson.D{{Key: "_id", Value: key}},
		options.FindOne().SetProjection(bson.D{{Key: "v", Value: 1}})).Decode(&cur)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return false, err
	}
	if cur.V != v-1 {
		return false, nil // the current document moved on: a real conflict
	}
	res, err := s.versions.DeleteOne(ctx, bson.D{{Key: "_id", Value: vkey}, {Key: "wt", Value: orphan.WT}})
	if err != nil {
		return false, err
	}
	return res.DeletedCount == 1, nil
}

func (s *Store) writeErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return s.mapErr(ctx, err)
}

// conflict reads the version actually current for the ConflictError.
func (s *Store) conflict(ctx context.Context, i int, key string, atLeast int64) error {
	var cur struct {
		V int64 `bson:"v"`
	}
	err := s.resources.FindOne(ctx, bson.D{{Key: "_id", Value: key}},
		options.FindOne().SetProjection(bson.D{{Key: "v", Value: 1}})).Decode(&cur)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return s.writeErr(ctx, err)
	}
	return &store.ConflictError{Index: i, Current: max(cur.V, atLeast)}
}
