package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kiln-fhir/kiln/store"
)

// Reindex implements store.Reindexer: each update is one conditional
// update of the current document, matched on its version and on not being
// a delete, so it is atomic with its precondition on any server (FerretDB
// included) and needs no transaction. A concurrent Commit either moved the
// document on first (no match: its own ix stays) or replaces the whole
// document after (with its own ix).
func (s *Store) Reindex(ctx context.Context, updates ...store.IndexUpdate) (int, error) {
	applied := 0
	for _, u := range updates {
		ix, sk := indexDocs(u.Index)
		res, err := s.resources.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: currentKey(u.Type, u.ID)}, {Key: "v", Value: u.Version}, {Key: "del", Value: false}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "ix", Value: ix}, {Key: "sk", Value: sk}}}})
		if err != nil {
			return applied, fmt.Errorf("mongo: reindex %s/%s: %w", u.Type, u.ID, s.writeErr(ctx, err))
		}
		applied += int(res.MatchedCount)
	}
	return applied, nil
}
