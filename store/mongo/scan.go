package mongo

import (
	"context"
	"errors"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/store"
)

// Scan implements store.Scanner from the versions collection: per
// resource, the version with lu <= At whose successor came after At
// (until > At; until is the successor's lu, write.go). It walks the
// (type, id, -v) index from After, so a page is a seek plus a walk in id
// order with no sort. Without transactions the end of a version's time as
// current is written just after its successor, so for a moment both can
// match: the newest version of each id wins (the first the walk meets).
//
// Since and the delete filter are applied to the version found, not in
// the query, so that neither can uncover an older version.
func (s *Store) Scan(ctx context.Context, q store.ScanQuery) (store.ScanPage, error) {
	if q.Count <= 0 {
		return store.ScanPage{}, errors.New("mongo: scan: Count must be positive")
	}
	at := int64(math.MaxInt64 - 1)
	if !q.At.IsZero() {
		// Stored instants are whole microseconds: lu <= At exactly when
		// lu <= floor(At).
		at = q.At.UnixMicro()
	}
	since := int64(math.MinInt64)
	if !q.Since.IsZero() {
		since = q.Since.UnixMicro()
	}
	filter := bson.D{
		{Key: "type", Value: q.Type},
		{Key: "id", Value: bson.D{{Key: "$gt", Value: q.After}}},
		{Key: "lu", Value: bson.D{{Key: "$lte", Value: at}}},
		{Key: "until", Value: bson.D{{Key: "$gt", Value: at}}},
	}
	cur, err := s.versions.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "v", Value: -1}}).
		SetProjection(readFields).
		SetBatchSize(int32(min(q.Count+1, 1000))))
	if err != nil {
		return store.ScanPage{}, fmt.Errorf("mongo: scan %s: %w", q.Type, s.mapErr(ctx, err))
	}
	defer cur.Close(context.WithoutCancel(ctx))
	page := store.ScanPage{Resources: make([]store.Resource, 0, min(q.Count, 1024))}
	last := ""
	for first := true; cur.Next(ctx); first = false {
		var d stored
		if err := cur.Decode(&d); err != nil {
			return store.ScanPage{}, fmt.Errorf("mongo: scan %s: %w", q.Type, err)
		}
		if !first && d.ID == last {
			continue // an older version caught between two writes
		}
		last = d.ID
		if d.LU <= since || (!q.Deleted && store.Method(d.M) == store.MethodDelete) {
			continue
		}
		page.Resources = append(page.Resources, d.resource())
		if len(page.Resources) == q.Count {
			page.Next = d.ID
			break
		}
	}
	if err := cur.Err(); err != nil {
		return store.ScanPage{}, fmt.Errorf("mongo: scan %s: %w", q.Type, s.mapErr(ctx, err))
	}
	return page, nil
}

var _ store.Scanner = (*Store)(nil)
