package mongo

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Cursors are base64url of a BSON document (so that key values keep their
// BSON types) followed by 8 bytes of SHA-256 over the document and the
// query's fingerprint: a cursor garbled, cut, extended or handed to
// another query is refused. Their values reach the server only as values.

var cursorEncoding = base64.RawURLEncoding

const sumLen = 8

func sealCursor(v any, fp []byte) string {
	b, err := bson.Marshal(v)
	if err != nil {
		panic(err) // our own plain structs
	}
	return cursorEncoding.EncodeToString(append(b, seal(b, fp)...))
}

func openCursor(s string, fp []byte, v any) bool {
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) <= sumLen {
		return false
	}
	body, sum := b[:len(b)-sumLen], b[len(b)-sumLen:]
	if string(seal(body, fp)) != string(sum) {
		return false
	}
	return bson.Unmarshal(body, v) == nil
}

func seal(b, fp []byte) []byte {
	h := sha256.New()
	h.Write(b)
	h.Write([]byte{0})
	h.Write(fp)
	return h.Sum(nil)[:sumLen]
}

type historyPos struct {
	Snapshot int64  `bson:"s"`
	Total    int    `bson:"n"`
	LU       int64  `bson:"lu"`
	Type     string `bson:"t"`
	ID       string `bson:"i"`
	V        int64  `bson:"v"`
}

func historyFingerprint(q store.HistoryQuery) []byte {
	fp := fmt.Appendf(nil, "history\x00%q\x00%q\x00%d\x00%d\x00%d", q.Type, q.ID,
		q.Since.UnixNano(), q.AtStart.UnixNano(), q.AtEnd.UnixNano())
	if q.Only != nil {
		// A cursor of one List's history is refused on another's.
		fp = fmt.Appendf(fp, "\x00only%d", len(q.Only))
		for _, m := range q.Only {
			fp = fmt.Appendf(fp, "\x00%q\x00%q\x00%d", m.Type, m.ID, m.Version)
		}
	}
	return fp
}

func encodeHistoryCursor(p historyPos, fp []byte) string { return sealCursor(p, fp) }

func decodeHistoryCursor(s string, fp []byte) (historyPos, bool) {
	var p historyPos
	ok := openCursor(s, fp, &p)
	return p, ok
}

// searchPos is a keyset position in a search: the null pattern of the sort
// keys (bit i set: key i has no value), the values of the keys that have
// one, the _id of the last match, and the total an estimate carries (-1:
// none).
type searchPos struct {
	Pattern int    `bson:"p"`
	Keys    bson.A `bson:"k"`
	Last    string `bson:"l"`
	Total   int64  `bson:"n"`
	// Back: the page before this position (a previous link), not after.
	Back bool `bson:"b,omitempty"`
}

// searchFingerprint binds a cursor to the query: types, filter and sort.
func searchFingerprint(q *search.Query) []byte {
	b, err := json.Marshal(struct {
		Types  []string
		Filter []search.Clause
		Sort   []search.SortKey
	}{q.Types, q.Filter, q.Sort})
	if err != nil {
		return fmt.Appendf(nil, "%d %v %d", len(q.Types), q.Types, len(q.Filter))
	}
	return b
}
