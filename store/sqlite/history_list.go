package sqlite

import (
	"encoding/binary"
	"encoding/json"

	"github.com/kiln-fhir/kiln/store"
)

// History restricted to the resources of a List (store.HistoryQuery.Only,
// http.html#history `_list`). The members travel as one bound JSON array,
// [[type, id, version], …], so the SQL text of a shape stays fixed however
// many there are and the statement cache keeps it. The versions are found
// through versions_instance, one seek per member, and sorted by seq: a List
// holds at most a thousand items (the REST layer's bound), so the sort is
// small, where walking the whole history in seq order and testing each
// version against the members would read every version ever written.

// onlyWith is the member table m(rid, ver), ahead of a page or count
// statement: ver 0 keeps every version of rid.
const onlyWith = `WITH m(rid, ver) AS MATERIALIZED (
	SELECT c.rid, j.value->>2 FROM json_each(?) AS j
	JOIN current AS c ON c.type = j.value->>0 AND c.id = j.value->>1)
`

func (sh historyShape) onlyWhere() string {
	return `v.rid IN (SELECT rid FROM m)
		AND EXISTS (SELECT 1 FROM m WHERE m.rid = v.rid AND m.ver IN (0, v.version))
		AND ` + sh.where()
}

func (sh historyShape) onlyPageSQL() string {
	return onlyWith + `SELECT v.seq, v.type, v.id, v.version, v.last_updated, v.method, v.body
		FROM versions AS v INDEXED BY versions_instance
		WHERE ` + sh.onlyWhere() + ` ORDER BY v.seq DESC LIMIT ?`
}

func (sh historyShape) onlyCountSQL() string {
	return onlyWith + `SELECT count(*) FROM versions AS v INDEXED BY versions_instance WHERE ` + sh.onlyWhere()
}

// onlyJSON is the members parameter.
func onlyJSON(only []store.VersionRef) string {
	rows := make([][3]any, len(only))
	for i, m := range only {
		rows[i] = [3]any{m.Type, m.ID, m.Version}
	}
	b, _ := json.Marshal(rows) // strings and integers: cannot fail
	return string(b)
}

// fingerprintOnly binds a cursor to the members as well: a cursor of one
// List's history is refused on another's.
func fingerprintOnly(fp []byte, only []store.VersionRef) []byte {
	if only == nil {
		return fp
	}
	fp = append(fp, 'L')
	fp = binary.AppendUvarint(fp, uint64(len(only)))
	for _, m := range only {
		fp = binary.AppendUvarint(fp, uint64(len(m.Type)))
		fp = append(fp, m.Type...)
		fp = binary.AppendUvarint(fp, uint64(len(m.ID)))
		fp = append(fp, m.ID...)
		fp = binary.AppendVarint(fp, m.Version)
	}
	return fp
}
