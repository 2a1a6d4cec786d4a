package search

import (
	"math/big"
	"strconv"
	"strings"
	"time"
)

// dateRange returns the range [start, end) a FHIR date, dateTime or
// instant covers at its precision (search.html#date): "2013" is the year,
// "2013-01" January, "2013-01-14T10:00:00Z" one second. A value without
// a time zone is read in loc. The range is in UTC, widened to whole
// milliseconds.
func dateRange(s string, loc *time.Location) (start, end time.Time, ok bool) {
	num := func(from, n int) (int, bool) {
		if from+n > len(s) {
			return 0, false
		}
		v := 0
		for i := from; i < from+n; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok {
		return
	}
	if len(s) == 4 {
		start = time.Date(year, time.January, 1, 0, 0, 0, 0, loc)
		return clamp(start, start.AddDate(1, 0, 0))
	}
	if s[4] != '-' {
		return start, end, false
	}
	month, ok := num(5, 2)
	if !ok || month < 1 || month > 12 {
		return start, end, false
	}
	if len(s) == 7 {
		start = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, loc)
		return clamp(start, start.AddDate(0, 1, 0))
	}
	if s[7] != '-' {
		return start, end, false
	}
	day, ok := num(8, 2)
	if !ok || day < 1 || day > daysIn(year, month) {
		return start, end, false
	}
	if len(s) == 10 {
		start = time.Date(year, time.Month(month), day, 0, 0, 0, 0, loc)
		return clamp(start, start.AddDate(0, 0, 1))
	}
	if s[10] != 'T' || len(s) < 16 || s[13] != ':' {
		return start, end, false
	}
	hour, ok1 := num(11, 2)
	minute, ok2 := num(14, 2)
	if !ok1 || !ok2 || hour > 23 || minute > 59 {
		return start, end, false
	}
	i := 16
	second, nanos := 0, 0
	step := time.Minute
	if i < len(s) && s[i] == ':' {
		if second, ok = num(i+1, 2); !ok || second > 59 {
			return start, end, false
		}
		i += 3
		step = time.Second
		if i < len(s) && s[i] == '.' {
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			digits := j - i - 1
			if digits == 0 || digits > 9 {
				return start, end, false
			}
			frac, _ := strconv.Atoi(s[i+1 : j])
			scale := 1
			for k := digits; k < 9; k++ {
				scale *= 10
			}
			nanos, step = frac*scale, time.Duration(scale)
			i = j
		}
	}
	zone := loc
	switch rest := s[i:]; {
	case rest == "":
	case rest == "Z":
		zone = time.UTC
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, ok1 := num(i+1, 2)
		m, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || h > 14 || m > 59 {
			return start, end, false
		}
		offset := h*3600 + m*60
		if rest[0] == '-' {
			offset = -offset
		}
		zone = time.FixedZone("", offset)
	default:
		return start, end, false
	}
	start = time.Date(year, time.Month(month), day, hour, minute, second, nanos, zone)
	return clamp(start, start.Add(step))
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// clamp puts a range in UTC, widens it to whole milliseconds and bounds it
// by MinTime and MaxTime.
func clamp(start, end time.Time) (time.Time, time.Time, bool) {
	start = start.UTC().Truncate(time.Millisecond)
	if t := end.UTC().Truncate(time.Millisecond); !t.Equal(end) {
		end = t.Add(time.Millisecond)
	}
	end = end.UTC()
	if start.Before(MinTime) {
		start = MinTime
	}
	if end.After(MaxTime) {
		end = MaxTime
	}
	return start, end, true
}

// numberRange reads a decimal as written and returns its value and the
// range [lo, hi) its precision covers (search.html#number: "5.40" stands
// for [5.395, 5.405), "100" for [99.5, 100.5), "1.5e2" for [145, 155)).
//
// An exponent's mantissa sets the precision. search.html#number says of
// "1e2" that it is "to 1 significant figure" yet writes its range as
// [95, 105), which is ±5%, not half a unit of one significant figure
// ([50, 150)). The two cannot both hold; Kiln follows the stated rule —
// the same rule that makes 100 [99.5, 100.5) and 1.5e2 [145, 155) —
// so 1e2 is [50, 150) (README, Search).
func numberRange(s string) (v, lo, hi float64, ok bool) {
	if v, lo, hi, ok := numberRangeFast(s); ok {
		return v, lo, hi, ok
	}
	mantissa, exp := s, 0
	for i := 0; i < len(s); i++ {
		if s[i] == 'e' || s[i] == 'E' {
			e, err := strconv.Atoi(s[i+1:])
			// Beyond float64's range anyway; and big.Rat would compute
			// 10^exp in full.
			if err != nil || e > 400 || e < -400 {
				return 0, 0, 0, false
			}
			mantissa, exp = s[:i], e
			break
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, 0, 0, false
	}
	for i := 0; i < len(mantissa); i++ {
		if mantissa[i] == '.' {
			exp -= len(mantissa) - i - 1
			break
		}
	}
	// half a unit of the last digit: 0.5 × 10^exp
	half := big.NewRat(1, 2)
	pow := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil))
	if exp >= 0 {
		half.Mul(half, pow)
	} else {
		half.Quo(half, pow)
	}
	v, _ = r.Float64()
	lo, _ = new(big.Rat).Sub(r, half).Float64()
	hi, _ = new(big.Rat).Add(r, half).Float64()
	return v, max(lo, -MaxNumber), min(hi, MaxNumber), true
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// numberRangeFast is numberRange for the decimals resources hold, without
// an exponent. With at most 15 digits the bounds are integers divided by
// powers of ten, both exact in a float64, so one division rounds them
// correctly; longer ones (Synthea writes 16) are spelled out as decimals
// for ParseFloat, which rounds correctly too. Either way the result is
// big.Rat's.
func numberRangeFast(s string) (v, lo, hi float64, ok bool) {
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	var m int64
	n, frac, point := 0, 0, false
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		switch {
		case c >= '0' && c <= '9':
			if n < 18 {
				m = m*10 + int64(c-'0')
			}
			n++
			if point {
				frac++
			}
		case c == '.' && !point && i > 0 && i < len(digits)-1:
			point = true
		default:
			return 0, 0, 0, false
		}
	}
	switch {
	case n == 0 || frac > 21:
		return 0, 0, 0, false
	case n <= 15:
		// value ± half a unit of the last digit, in units of 10^-(frac+1)
		scale := pow10[frac+1]
		l, h := float64(m*10-5), float64(m*10+5)
		v, lo, hi = float64(m)/pow10[frac], l/scale, h/scale
	default:
		var err error
		if v, err = strconv.ParseFloat(digits, 64); err != nil {
			return 0, 0, 0, false
		}
		up := digits + "5"
		if !point {
			up = digits + ".5"
		}
		down := decrement(digits) + "5"
		if !point {
			down = decrement(digits) + ".5"
		}
		lo, _ = strconv.ParseFloat(down, 64)
		hi, _ = strconv.ParseFloat(up, 64)
		if strings.Trim(digits, "0.") == "" { // zero: nothing to decrement
			lo = -hi
		}
	}
	if neg {
		return -v, -hi, -lo, true
	}
	return v, lo, hi, true
}

// decrement subtracts one unit of the last digit from a positive decimal
// ("1.20" → "1.19", "1.00" → "0.99"); zero comes back unchanged.
func decrement(s string) string {
	b := []byte(s)
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case '.':
			continue
		case '0':
			b[i] = '9'
			continue
		}
		b[i]--
		return string(b)
	}
	return s
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
