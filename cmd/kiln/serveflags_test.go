package main

import (
	"flag"
	"io"
	"os"
	"testing"
	"time"
)

// TestDurationSettings: --export-lease and --mongo-timeout with their
// KILN_* variables. A flag given wins over the environment; a malformed
// or non-positive value stops the server rather than running it with a
// lease or timeout nobody asked for.
func TestDurationSettings(t *testing.T) {
	for _, tc := range []struct {
		name           string
		env            map[string]string
		args           []string
		lease, timeout time.Duration
		fails          bool
	}{
		{name: "defaults", lease: 30 * time.Second, timeout: 5 * time.Second},
		{name: "environment", env: map[string]string{"KILN_EXPORT_LEASE": "1m", "KILN_MONGO_TIMEOUT": " 20s "},
			lease: time.Minute, timeout: 20 * time.Second},
		{name: "flags win", env: map[string]string{"KILN_EXPORT_LEASE": "1m", "KILN_MONGO_TIMEOUT": "20s"},
			args: []string{"--export-lease", "3s", "--mongo-timeout", "2s"}, lease: 3 * time.Second, timeout: 2 * time.Second},
		{name: "malformed lease", env: map[string]string{"KILN_EXPORT_LEASE": "ten"}, fails: true},
		{name: "malformed timeout", env: map[string]string{"KILN_MONGO_TIMEOUT": "5"}, fails: true},
		{name: "zero timeout in the environment", env: map[string]string{"KILN_MONGO_TIMEOUT": "0s"}, fails: true},
		{name: "zero lease", args: []string{"--export-lease", "0s"}, fails: true},
		{name: "negative timeout", args: []string{"--mongo-timeout", "-1s"}, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"KILN_EXPORT_LEASE", "KILN_MONGO_TIMEOUT"} {
				t.Setenv(k, tc.env[k]) // restored after the test
				if _, ok := tc.env[k]; !ok {
					os.Unsetenv(k)
				}
			}
			var cfg serveConfig
			fs := flag.NewFlagSet("kiln serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg.flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := cfg.numbersFromEnv(fs)
			if tc.fails {
				if err == nil {
					t.Fatalf("accepted: lease %v, timeout %v", cfg.exportLease, cfg.mongoTimeout)
				}
				return
			}
			if err != nil || cfg.exportLease != tc.lease || cfg.mongoTimeout != tc.timeout {
				t.Fatalf("lease %v, timeout %v, %v; want %v and %v", cfg.exportLease, cfg.mongoTimeout, err, tc.lease, tc.timeout)
			}
		})
	}
}
