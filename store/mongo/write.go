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
		if mongo.IsDuplicateKeyError(err) {
			// Version n exists: current is n, or becomes n as soon as its
			// writer moves the current document.
			return &lostCAS{index: i, key: key, atLeast: c.Version}
		}
		return s.writeErr(ctx, err)
	}
	moved := true
	if c.Version == 1 {
		if _, err := s.resources.InsertOne(ctx, cur); err != nil {
			if !mongo.IsDuplicateKeyError(err) {
				return s.undo(ctx, vkey, s.writeErr(ctx, err))
			}
			moved = false
		}
	} else {
		res, err := s.resources.ReplaceOne(ctx, bson.D{{Key: "_id", Value: key}, {Key: "v", Value: c.Version - 1}}, cur)
		if err != nil {
			return s.undo(ctx, vkey, s.writeErr(ctx, err))
		}
		moved = res.MatchedCount > 0
	}
	if !moved {
		return s.undo(ctx, vkey, &lostCAS{index: i, key: key})
	}
	if c.Version > 1 {
		if _, err := s.versions.UpdateOne(ctx, bson.D{{Key: "_id", Value: versionKey(c.Type, c.ID, c.Version-1)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: lu}}}}); err != nil {
			return s.writeErr(ctx, err)
		}
	}
	return nil
}

// undo takes back the version document of a change that lost, then
// returns err. Inside a transaction the abort does it anyway.
func (s *Store) undo(ctx context.Context, vkey string, err error) error {
	if !s.Transactions {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		_, _ = s.versions.DeleteOne(dctx, bson.D{{Key: "_id", Value: vkey}})
	}
	return err
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
