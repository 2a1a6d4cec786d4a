package rest

import (
	"testing"
	"time"
)

func TestParseDateRange(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		in         string
		start, end string
		bad        bool
	}{
		{in: "2013", start: "2013-01-01T00:00:00Z", end: "2014-01-01T00:00:00Z"},
		{in: "2013-01", start: "2013-01-01T00:00:00Z", end: "2013-02-01T00:00:00Z"},
		{in: "2013-12-31", start: "2013-12-31T00:00:00Z", end: "2014-01-01T00:00:00Z"},
		{in: "2013-01-02T10:00+02:00", start: "2013-01-02T08:00:00Z", end: "2013-01-02T08:01:00Z"},
		{in: "2013-01-02T10:00:05Z", start: "2013-01-02T10:00:05Z", end: "2013-01-02T10:00:06Z"},
		{in: "2013-01-02T10:00:05.5Z", start: "2013-01-02T10:00:05.5Z", end: "2013-01-02T10:00:05.6Z"},
		{in: "2013-01-02T10:00:05.123456Z", start: "2013-01-02T10:00:05.123456Z", end: "2013-01-02T10:00:05.123457Z"},
		{in: "2013-13", bad: true},
		{in: "2013-01-02T10:00:05.Z", bad: true},
		{in: "yesterday", bad: true},
		{in: "", bad: true},
	} {
		start, end, err := parseDateRange(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted", tc.in)
			}
			continue
		}
		if err != nil || !start.Equal(ts(tc.start)) || !end.Equal(ts(tc.end)) {
			t.Errorf("%q: [%v, %v) %v; want [%s, %s)", tc.in, start, end, err, tc.start, tc.end)
		}
	}
}
