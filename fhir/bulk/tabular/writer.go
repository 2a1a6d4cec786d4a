package tabular

import (
	"bytes"
	"fmt"
	"io"

	"github.com/parquet-go/jsonlite"
	"github.com/parquet-go/parquet-go"
)

// RowGroupBytes is how much resource JSON a row group holds before it is
// written out: the bound on what a Writer keeps in memory (the column
// buffers of one row group, a few times this).
const RowGroupBytes = 4 << 20

// Writer writes one resource type's Parquet file, row group by row group.
type Writer struct {
	typ     string
	pw      *parquet.GenericWriter[*jsonlite.Value]
	row     []*jsonlite.Value
	buf     []byte
	pending int // bytes of JSON in the open row group
	rows    int
}

// NewWriter starts a Parquet file of typ's resources on out.
func NewWriter(out io.Writer, typ string) (*Writer, error) {
	s, err := Schema(typ)
	if err != nil {
		return nil, err
	}
	pw := parquet.NewGenericWriter[*jsonlite.Value](out, s,
		parquet.Compression(&parquet.Snappy),
		// Hundreds of columns, most of them empty in any one file: small
		// page buffers keep the writer's memory to its data.
		parquet.PageBufferSize(32<<10),
		parquet.CreatedBy("kiln", "", ""))
	return &Writer{typ: typ, pw: pw, row: make([]*jsonlite.Value, 1)}, nil
}

// Write adds one resource (its FHIR JSON, an object of the Writer's type).
// The resource is trusted to be valid R4, as every stored resource is
// (fhir/resource checks it on write): parquet-go converts a JSON value to
// its column's type as best it can ("yes" in a boolean column is true).
func (w *Writer) Write(body []byte) (err error) {
	body = bytes.TrimSpace(body)
	if len(body) < 2 || body[0] != '{' {
		return fmt.Errorf("tabular: a %s resource is not a JSON object", w.typ)
	}
	// The row is the resource with resource_json added: parquet-go maps
	// an object's members onto the schema's columns by name, and writes
	// a JSON column as the member's text, byte for byte.
	w.buf = append(append(append(append(w.buf[:0], `{"`+JSONColumn+`":`...), body...), ','), body[1:]...)
	if len(body) == 2 { // {}
		w.buf = append(w.buf[:len(w.buf)-2], '}')
	}
	v, err := jsonlite.Parse(string(w.buf))
	if err != nil {
		return fmt.Errorf("tabular: a %s resource is not JSON: %w", w.typ, err)
	}
	defer func() {
		// parquet-go panics on a value its column cannot take (a string
		// where the definitions say boolean): the resource does not fit
		// the R4 definitions.
		if r := recover(); r != nil {
			err = fmt.Errorf("tabular: a %s resource does not fit its R4 columns: %v", w.typ, r)
		}
	}()
	w.row[0] = v
	if _, err := w.pw.Write(w.row); err != nil {
		return err
	}
	w.row[0] = nil
	w.rows++
	w.pending += len(body)
	if w.pending >= RowGroupBytes {
		w.pending = 0
		return w.pw.Flush()
	}
	return nil
}

// Pending is how many bytes of resource JSON the open row group holds:
// the file grows by about that much (less, compressed) when it is
// written.
func (w *Writer) Pending() int { return w.pending }

// Rows is how many resources were written.
func (w *Writer) Rows() int { return w.rows }

// Close writes the last row group and the footer.
func (w *Writer) Close() error { return w.pw.Close() }
