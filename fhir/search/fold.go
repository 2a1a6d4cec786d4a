package search

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Fold normalises text for string search (search.html#string: case- and
// accent-insensitive, non-significant whitespace ignored): Unicode NFD,
// combining marks removed, lower case, runs of whitespace made one space,
// trimmed. "  Évelyn  ÅSTRÖM" → "evelyn astrom". Letters that do not
// decompose (ø, ł, đ, ß, æ, œ) are spelled out in Latin letters. The
// query side folds search values the same way.
func Fold(s string) string {
	ascii, folded := true, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			ascii, folded = false, false
		case 'A' <= c && c <= 'Z', c == '\t', c == '\n', c == '\v', c == '\f', c == '\r':
			folded = false
		case c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' '):
			folded = false
		}
	}
	if folded {
		return s // already lower-case ASCII with single spaces: no copy
	}
	if !ascii {
		s = norm.NFD.String(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false // a space is pending
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case !ascii && unicode.Is(unicode.Mn, r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		if s, ok := latin[unicode.ToLower(r)]; ok {
			b.WriteString(s)
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// latin spells the Latin letters that have no decomposition.
var latin = map[rune]string{
	'ø': "o", 'ł': "l", 'đ': "d", 'ð': "d", 'þ': "th", 'ß': "ss", 'æ': "ae", 'œ': "oe", 'ı': "i", 'ħ': "h",
}

// Phonetic returns the key a phonetic parameter (xpathUsage phonetic:
// Patient, Person, Practitioner, RelatedPerson, Organization and
// InsurancePlan phonetic) matches on: American Soundex of each word,
// space-separated. "Chalmers" → "C456"; "Smith", "Smyth" → "S530". The
// specification names no algorithm; the query side must use this one.
func Phonetic(s string) string {
	var keys []string
	for _, w := range strings.Fields(Fold(s)) {
		if k := soundex(w); k != "" {
			keys = append(keys, k)
		}
	}
	return strings.Join(keys, " ")
}

func soundex(w string) string {
	const codes = "01230120022455012623010202" // a..z
	var k [4]byte
	n := 0
	var last byte
	for i := 0; i < len(w) && n < 4; i++ {
		c := w[i]
		if c < 'a' || c > 'z' {
			continue
		}
		d := codes[c-'a']
		if n == 0 {
			k[0] = c - 'a' + 'A'
			n, last = 1, d
			continue
		}
		switch {
		case c == 'h' || c == 'w': // do not separate equal codes
		case d == '0':
			last = 0
		case d != last:
			k[n] = d
			n++
			last = d
		}
	}
	if n == 0 {
		return ""
	}
	for ; n < 4; n++ {
		k[n] = '0'
	}
	return string(k[:])
}
