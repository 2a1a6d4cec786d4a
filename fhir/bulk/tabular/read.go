package tabular

import (
	"errors"
	"io"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Rows reads a Parquet file and returns, for each row, every column's
// non-null values as text by dotted column path ("code.coding.code":
// ["8867-4"]), in the order of the file: what the tests, and a client
// checking a download, compare with the NDJSON of the same resources. It
// holds the whole file's values: for checks, not for analytics.
func Rows(r io.ReaderAt, size int64) ([]map[string][]string, error) {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, p := range f.Schema().Columns() {
		paths = append(paths, strings.Join(p, "."))
	}
	pr := parquet.NewReader(f)
	defer pr.Close()
	var rows []map[string][]string
	buf := make([]parquet.Row, 64)
	for {
		n, err := pr.ReadRows(buf)
		for _, row := range buf[:n] {
			m := map[string][]string{}
			for _, v := range row {
				if !v.IsNull() {
					m[paths[v.Column()]] = append(m[paths[v.Column()]], v.String())
				}
			}
			rows = append(rows, m)
		}
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
