package bulk

import (
	"bytes"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// NDJSON chunks are stored zstd-compressed: an export writes every byte
// it serves into the store (the files outlive the worker and are served
// by any process), and FHIR JSON shrinks about tenfold, so the store
// writes a tenth of the bytes (what bounded export speed: the scan is
// as fast as the baseline, the chunk writes were not). The fastest level
// compresses faster than SQLite writes; chunks are compressed on the
// chunk writer's goroutine, beside the scan. Chunks are decompressed as
// they are served: clients get plain NDJSON.
//
// Parquet files are compressed by column already and stored as written.

var (
	encoder = sync.OnceValue(func() *zstd.Encoder {
		// EncodeAll may run on every worker's chunk writer at once: the
		// default concurrency (GOMAXPROCS) lets them.
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			panic(err) // only for invalid options
		}
		return e
	})
	decoder = sync.OnceValue(func() *zstd.Decoder {
		// A chunk is at least one whole line: a resource as large as the
		// REST API accepts (--max-body) makes a chunk that large.
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			panic(err)
		}
		return d
	})
)

// zstdMagic opens every zstd frame. An NDJSON chunk stored uncompressed
// (by an earlier Kiln) starts with a line, '{': never this.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// compressed reports whether a file's chunks are stored compressed.
func compressed(name string) bool { return strings.HasSuffix(name, ".ndjson") }

// packChunk is what the store keeps of a chunk of file name.
func packChunk(name string, data []byte) []byte {
	if !compressed(name) {
		return data
	}
	return encoder().EncodeAll(data, make([]byte, 0, len(data)/4))
}

// unpackChunk is the chunk as served.
func unpackChunk(name string, data []byte) ([]byte, error) {
	if !compressed(name) || !bytes.HasPrefix(data, zstdMagic) {
		return data, nil
	}
	return decoder().DecodeAll(data, make([]byte, 0, chunkSize+64<<10))
}
