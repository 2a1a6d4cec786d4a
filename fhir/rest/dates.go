package rest

import (
	"errors"
	"math"
	"strings"
	"time"
)

// parseDateRange reads a FHIR date or dateTime and returns the range its
// precision covers, [start, end) (search.html#date: 2013-01 is all of
// January 2013; 10:00:00.5 is half a second). Values without a time zone
// are taken as UTC.
func parseDateRange(s string) (time.Time, time.Time, error) {
	if _, after, ok := strings.Cut(s, "T"); ok {
		if _, frac, ok := strings.Cut(after, "."); ok {
			// time.Parse accepts fractions the layout does not show, so the
			// precision is read from the digits given.
			digits := len(frac) - len(strings.TrimLeft(frac, "0123456789"))
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil || digits == 0 || digits > 9 {
				return time.Time{}, time.Time{}, errors.New("not a FHIR dateTime")
			}
			step := time.Duration(math.Pow10(9 - digits))
			return t, t.Add(step), nil
		}
	}
	layouts := []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
	}
	for _, l := range layouts {
		if t, err := time.Parse(l.layout, s); err == nil {
			return t, l.next(t), nil
		}
	}
	return time.Time{}, time.Time{}, errors.New("not a FHIR date or dateTime")
}
