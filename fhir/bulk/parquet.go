package bulk

import (
	"context"
	"fmt"

	"github.com/kiln-fhir/kiln/fhir/bulk/tabular"
)

// Parquet output (_outputFormat=application/vnd.apache.parquet, beyond
// the IG: issue 6): one Parquet file per resource type, split like the
// NDJSON files, in the columns of fhir/bulk/tabular. The error and
// deleted files stay NDJSON, as the IG defines them.

// formatParquet is spec.Format for Parquet output; empty is NDJSON.
const formatParquet = "parquet"

// parquetMediaType is the file's Content-Type (IANA-registered, 2024).
const parquetMediaType = "application/vnd.apache.parquet"

// output writes one list of resource files: NDJSON (fileWriter) or
// Parquet (parquetWriter).
type output interface {
	line(ctx context.Context, typ string, body []byte) error
	close(ctx context.Context) error
}

// parquetWriter writes Parquet files into the result's output list, one
// type per file, a new file when the type changes or the file has passed
// MaxFileSize. It holds one row group of one file and one chunk at most.
type parquetWriter struct {
	x    *exporter
	list *[]file
	cur  int // index of the open file in *list; -1 when none
	pw   *tabular.Writer
	sink *chunkSink
}

func (x *exporter) parquetWriter(list *[]file) *parquetWriter {
	return &parquetWriter{x: x, list: list, cur: -1}
}

func (w *parquetWriter) line(ctx context.Context, typ string, body []byte) error {
	// The size of a file is known as its row groups are written: what is
	// written plus the JSON of the open row group (an overestimate:
	// columns compress) is what is checked against MaxFileSize.
	if w.cur >= 0 && ((*w.list)[w.cur].Type != typ || w.sink.size+int64(w.pw.Pending()) >= w.x.h.cfg.MaxFileSize) {
		if err := w.close(ctx); err != nil {
			return err
		}
	}
	if w.cur < 0 {
		n := nextFileNumber(*w.list, typ)
		*w.list = append(*w.list, file{Type: typ, Name: fmt.Sprintf("%s-%d.parquet", typ, n)})
		w.cur = len(*w.list) - 1
		w.sink = &chunkSink{x: w.x, ctx: ctx, name: (*w.list)[w.cur].Name}
		pw, err := tabular.NewWriter(w.sink, typ)
		if err != nil {
			return err
		}
		w.pw = pw
	}
	w.sink.ctx = ctx
	if err := w.pw.Write(body); err != nil {
		return err
	}
	(*w.list)[w.cur].Count++
	return nil
}

func (w *parquetWriter) close(ctx context.Context) error {
	if w.cur < 0 {
		return nil
	}
	w.cur = -1
	w.sink.ctx = ctx
	if err := w.pw.Close(); err != nil {
		return err
	}
	return w.sink.flush()
}

// chunkSink is the io.Writer under a Parquet file: it cuts what the
// writer writes into chunks for the store.
type chunkSink struct {
	x      *exporter
	ctx    context.Context
	name   string
	buf    []byte
	chunks int
	size   int64
}

func (s *chunkSink) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	s.size += int64(len(p))
	if len(s.buf) >= chunkSize {
		if err := s.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (s *chunkSink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	if err := s.x.put(s.ctx, chunk{file: s.name, n: s.chunks, data: s.buf}); err != nil {
		return err
	}
	s.chunks++
	s.buf = make([]byte, 0, chunkSize+64<<10)
	return nil
}
