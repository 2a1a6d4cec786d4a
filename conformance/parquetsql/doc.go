// Package parquetsql checks Kiln's Parquet export with a real SQL engine:
// DuckDB opens the files of a bulk export of the Synthea bundles in
// testdata and answers counts and fields as the store holds them
// (issue 6: "A test opens the files with a real engine").
//
// It is a module of its own so that DuckDB, a large cgo library, is a
// dependency of this test only, never of the kiln binary (built with
// CGO_ENABLED=0). `make test` runs it; its first build compiles and links
// DuckDB, which takes about a minute.
package parquetsql
