package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/store"
)

// stored is the part of a current or version document a read returns: the
// body bytes as written, never the native copy.
type stored struct {
	Type string      `bson:"type"`
	ID   string      `bson:"id"`
	V    int64       `bson:"v"`
	LU   int64       `bson:"lu"`
	M    string      `bson:"m"`
	Body bson.Binary `bson:"body"`
}

// readFields projects what stored decodes (and the keyset fields).
var readFields = bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "v", Value: 1},
	{Key: "lu", Value: 1}, {Key: "m", Value: 1}, {Key: "body", Value: 1}}

func (d *stored) resource() store.Resource {
	r := store.Resource{Type: d.Type, ID: d.ID, Version: d.V, LastUpdated: time.UnixMicro(d.LU).UTC(),
		Method: store.Method(d.M)}
	if r.Method != store.MethodDelete {
		r.Body = d.Body.Data
		if r.Body == nil {
			r.Body = []byte{}
		}
	}
	return r
}

// Read implements store.Resources.
func (s *Store) Read(ctx context.Context, typ, id string) (store.Resource, error) {
	return s.readOne(ctx, s.resources, currentKey(typ, id))
}

// VRead implements store.Resources.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	if version < 1 {
		if err := ctx.Err(); err != nil {
			return store.Resource{}, err
		}
		return store.Resource{}, store.ErrNotFound
	}
	return s.readOne(ctx, s.versions, versionKey(typ, id, version))
}

func (s *Store) readOne(ctx context.Context, coll *mongo.Collection, key string) (store.Resource, error) {
	if err := ctx.Err(); err != nil {
		return store.Resource{}, err
	}
	var d stored
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: key}}, options.FindOne().SetProjection(readFields)).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return store.Resource{}, fmt.Errorf("mongo: %s: %w", key, store.ErrNotFound)
	case err != nil:
		return store.Resource{}, fmt.Errorf("mongo: read: %w", s.mapErr(ctx, err))
	}
	r := d.resource()
	if r.Deleted() {
		return r, fmt.Errorf("mongo: %s: %w", key, store.ErrGone)
	}
	return r, nil
}

// History implements store.History: newest first by (lu, type, id,
// version), keyset paged. The first page fixes a snapshot (the write time
// wt it was read at) and the total; later pages list only versions written
// by then and repeat that total, so nothing written while a client pages
// shifts or joins the list.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (store.HistoryPage, error) {
	if err := ctx.Err(); err != nil {
		return store.HistoryPage{}, err
	}
	if q.Count <= 0 {
		return store.HistoryPage{}, fmt.Errorf("mongo: history: count %d", q.Count)
	}
	var pos *historyPos
	if q.Cursor != "" {
		p, ok := decodeHistoryCursor(q.Cursor, historyFingerprint(q))
		if !ok {
			return store.HistoryPage{}, fmt.Errorf("mongo: history: %w", store.ErrInvalidCursor)
		}
		pos = &p
	}
	// The first page sees everything (a client reads its own writes
	// whatever the clocks of the processes that wrote); later pages only
	// what was written by the time it was read. wt is the writing
	// process's clock: skew between Kiln processes shifts that boundary by
	// as much, for versions written during the paging.
	snapshot := time.Now().UnixMicro()
	filter := bson.D{}
	if pos != nil {
		snapshot = pos.Snapshot
		filter = append(filter, bson.E{Key: "wt", Value: bson.D{{Key: "$lte", Value: snapshot}}})
	}
	if q.Type != "" {
		filter = append(filter, bson.E{Key: "type", Value: q.Type})
	}
	if q.ID != "" {
		filter = append(filter, bson.E{Key: "id", Value: q.ID})
	}
	if !q.Since.IsZero() {
		filter = append(filter, bson.E{Key: "lu", Value: bson.D{{Key: "$gte", Value: ceilMicro(q.Since)}}})
	}
	var and bson.A // clauses that need a key of their own ($or is the cursor's)
	if !q.AtStart.IsZero() || !q.AtEnd.IsZero() {
		// history.html _at: written before AtEnd, not replaced before AtStart.
		if !q.AtEnd.IsZero() {
			and = append(and, bson.D{{Key: "lu", Value: bson.D{{Key: "$lt", Value: ceilMicro(q.AtEnd)}}}})
		}
		if !q.AtStart.IsZero() {
			filter = append(filter, bson.E{Key: "until", Value: bson.D{{Key: "$gte", Value: ceilMicro(q.AtStart)}}})
		}
	}
	if q.Only != nil {
		if len(q.Only) == 0 {
			return store.HistoryPage{}, nil
		}
		and = append(and, bson.D{{Key: "$or", Value: onlyFilter(q.Only)}})
	}
	if len(and) > 0 {
		filter = append(filter, bson.E{Key: "$and", Value: and})
	}
	total := 0
	if pos != nil {
		total = pos.Total
	} else {
		n, err := s.versions.CountDocuments(ctx, filter)
		if err != nil {
			return store.HistoryPage{}, fmt.Errorf("mongo: history: count: %w", s.mapErr(ctx, err))
		}
		total = int(n)
	}
	page := filter
	if pos != nil {
		// After (lu, type, id, v) in the order lu desc, type, id, v desc.
		after := bson.A{
			bson.D{{Key: "lu", Value: bson.D{{Key: "$lt", Value: pos.LU}}}},
			bson.D{{Key: "lu", Value: pos.LU}, {Key: "type", Value: bson.D{{Key: "$gt", Value: pos.Type}}}},
			bson.D{{Key: "lu", Value: pos.LU}, {Key: "type", Value: pos.Type}, {Key: "id", Value: bson.D{{Key: "$gt", Value: pos.ID}}}},
			bson.D{{Key: "lu", Value: pos.LU}, {Key: "type", Value: pos.Type}, {Key: "id", Value: pos.ID},
				{Key: "v", Value: bson.D{{Key: "$lt", Value: pos.V}}}},
		}
		page = append(append(bson.D{}, filter...), bson.E{Key: "$or", Value: after})
	}
	opts := options.Find().SetProjection(readFields).
		SetSort(bson.D{{Key: "lu", Value: -1}, {Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "v", Value: -1}}).
		SetLimit(int64(q.Count) + 1)
	cur, err := s.versions.Find(ctx, page, opts)
	if err != nil {
		return store.HistoryPage{}, fmt.Errorf("mongo: history: %w", s.mapErr(ctx, err))
	}
	var docs []stored
	if err := cur.All(ctx, &docs); err != nil {
		return store.HistoryPage{}, fmt.Errorf("mongo: history: %w", s.mapErr(ctx, err))
	}
	out := store.HistoryPage{Total: total}
	for i := range docs {
		if i == q.Count {
			last := docs[i-1]
			out.Next = encodeHistoryCursor(historyPos{Snapshot: snapshot, Total: total,
				LU: last.LU, Type: last.Type, ID: last.ID, V: last.V}, historyFingerprint(q))
			break
		}
		out.Versions = append(out.Versions, docs[i].resource())
	}
	return out, nil
}

// onlyFilter matches the versions of the members of store.HistoryQuery.Only
// (http.html#history _list): one branch per member, each answered by the
// versions' (type, id, v) index.
func onlyFilter(only []store.VersionRef) bson.A {
	or := make(bson.A, 0, len(only))
	for _, m := range only {
		d := bson.D{{Key: "type", Value: m.Type}, {Key: "id", Value: m.ID}}
		if m.Version > 0 {
			d = append(d, bson.E{Key: "v", Value: m.Version})
		}
		or = append(or, d)
	}
	return or
}
