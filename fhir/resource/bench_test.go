package resource

import (
	"fmt"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/synthea"
)

// syntheaResources returns every entry[].resource of the Synthea
// transaction bundles in testdata/synthea, as the bytes a client would send.
func syntheaResources(tb testing.TB) [][]byte {
	tb.Helper()
	entries, err := synthea.Entries("../../testdata/synthea")
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, len(entries))
	for i, e := range entries {
		out[i] = e.Resource
	}
	return out
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resources/s")
}

// BenchmarkParse measures parse+validate of one Synthea resource per
// iteration, cycling through all of them.
func BenchmarkParse(b *testing.B) {
	res := syntheaResources(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(res[i%len(res)]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkStamp measures Stamp (set id/meta, marshal to canonical JSON)
// of one parsed Synthea resource per iteration.
func BenchmarkStamp(b *testing.B) {
	src := syntheaResources(b)
	parsed := make([]*Resource, len(src))
	for i, body := range src {
		r, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		parsed[i] = r
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := parsed[i%len(parsed)]
		if _, err := r.Stamp(r.ID, int64(i), now); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkResourceTypeFirst measures the reordering Stamp adds to
// google/fhir's marshalling, per Synthea resource.
func BenchmarkResourceTypeFirst(b *testing.B) {
	src := syntheaResources(b)
	outs := make([][]byte, len(src))
	size := 0
	for i, body := range src {
		r, err := parse(body, nil, false)
		if err != nil {
			b.Fatal(err)
		}
		if outs[i], err = r.marshal(r.ID, 1, time.Now()); err != nil {
			b.Fatal(err)
		}
		size += len(outs[i])
	}
	b.SetBytes(int64(size / len(outs)))
	scratch := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		scratch = append(scratch[:0], outs[i%len(outs)]...)
		resourceTypeFirst(scratch)
	}
	reportRate(b)
}

// BenchmarkSummary measures _summary=true on stored Synthea resources.
func BenchmarkSummary(b *testing.B) {
	src := syntheaResources(b)
	stored := make([][]byte, len(src))
	for i, body := range src {
		r, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		if stored[i], err = r.Stamp(r.ID, 1, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Summary(stored[i%len(stored)], "true"); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkParseStamp measures a write as the server does it: parse one
// Synthea resource, then stamp it once (create, update, transaction
// entry) or twice (kiln import: once like the stored version to compare,
// once to write). BenchmarkStamp alone restamps already-stamped resources.
func BenchmarkParseStamp(b *testing.B) {
	src := syntheaResources(b)
	now := time.Now()
	for _, stamps := range []int{1, 2} {
		b.Run(fmt.Sprintf("stamps=%d", stamps), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r, err := Parse(src[i%len(src)])
				if err != nil {
					b.Fatal(err)
				}
				for s := 0; s < stamps; s++ {
					if _, err := r.Stamp(r.ID, int64(i+s), now); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportRate(b)
		})
	}
}
