// Package redact hides phone numbers, e-mail addresses, card numbers
// (Luhn-checked) and IBANs (checksum-checked) behind stable placeholders
// before text leaves the machine, and puts them back in what comes back.
//
// One Redactor serves one lead: the same value always gets the same
// placeholder ("[PHONE_1]"), so the model can still tell two numbers apart
// and a rolling summary keeps its references.
package redact

import (
	"fmt"
	"regexp"
	"strings"
)

// The kinds of values hidden, as they appear in placeholders and counts.
const (
	KindEmail = "EMAIL"
	KindIBAN  = "IBAN"
	KindCard  = "CARD"
	KindPhone = "PHONE"
)

var (
	reEmail = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	reIBAN  = regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b`)
	reCard  = regexp.MustCompile(`\b\d(?:[ \-]?\d){12,18}\b`)
	// A phone: an optional +, then digits with spaces, dashes, dots or
	// parentheses between them. checkPhone decides.
	rePhone = regexp.MustCompile(`(?:\+|\b)\d[\d \-().]{5,20}\d\b`)
	// Thousands written with spaces ("1 200 000") and dates are not phones.
	reThousands = regexp.MustCompile(`^\d{1,3}(?: \d{3})+$`)
	reDateLike  = regexp.MustCompile(`\d{1,2}\.\d{1,2}\.\d{2,4}`)
	// A placeholder as made, or in parentheses: the prompt writes brackets
	// inside "[contact: ...]" and "[file: ...]" as parentheses.
	rePlace = regexp.MustCompile(`[\[(](EMAIL|IBAN|CARD|PHONE)_(\d+)[\])]`)
)

// Redactor hides values and restores them. It is not safe for concurrent use.
type Redactor struct {
	byValue map[string]string // normalised value -> placeholder
	byPlace map[string]string // placeholder -> the value as first seen
	counts  map[string]int    // distinct values per kind
	hits    int               // values replaced, repeats included
}

// New returns an empty Redactor.
func New() *Redactor {
	return &Redactor{byValue: map[string]string{}, byPlace: map[string]string{}, counts: map[string]int{}}
}

// Redact returns s with every phone, e-mail, card number and IBAN replaced
// by its placeholder.
func (r *Redactor) Redact(s string) string {
	if s == "" {
		return s
	}
	s = reEmail.ReplaceAllStringFunc(s, func(m string) string { return r.place(KindEmail, strings.ToLower(m), m) })
	s = reIBAN.ReplaceAllStringFunc(s, func(m string) string {
		if !ibanOK(m) {
			return m
		}
		return r.place(KindIBAN, digitsAndLetters(m), m)
	})
	s = reCard.ReplaceAllStringFunc(s, func(m string) string {
		d := digits(m)
		if len(d) < 13 || len(d) > 19 || !luhn(d) {
			return m
		}
		return r.place(KindCard, d, m)
	})
	s = rePhone.ReplaceAllStringFunc(s, func(m string) string {
		if !isPhone(m) {
			return m
		}
		return r.place(KindPhone, phoneKey(digits(m)), m)
	})
	return s
}

// Restore puts the hidden values back into s, "[PHONE_1]" and "(PHONE_1)"
// alike. Placeholders this Redactor did not make are left as they are.
func (r *Redactor) Restore(s string) string {
	if !strings.ContainsAny(s, "[(") {
		return s
	}
	return rePlace.ReplaceAllStringFunc(s, func(m string) string {
		if m[0] != '[' && m[len(m)-1] == ']' || m[0] == '[' && m[len(m)-1] != ']' {
			return m // mismatched brackets: not ours
		}
		if v, ok := r.byPlace["["+m[1:len(m)-1]+"]"]; ok {
			return v
		}
		return m
	})
}

// Counts returns how many distinct values of each kind were hidden.
func (r *Redactor) Counts() map[string]int {
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// Total is how many values were replaced, repeats included.
func (r *Redactor) Total() int { return r.hits }

func (r *Redactor) place(kind, key, original string) string {
	r.hits++
	key = kind + ":" + key
	if p, ok := r.byValue[key]; ok {
		return p
	}
	r.counts[kind]++
	p := fmt.Sprintf("[%s_%d]", kind, r.counts[kind])
	r.byValue[key] = p
	r.byPlace[p] = strings.TrimSpace(original)
	return p
}

func isPhone(m string) bool {
	t := strings.TrimSpace(m)
	d := digits(t)
	if len(d) < 10 || len(d) > 15 {
		return false
	}
	if reThousands.MatchString(t) || reDateLike.MatchString(t) {
		return false
	}
	// A plain run of digits is a phone only when it looks like one: with
	// a +, or 10-12 digits (8 916 ..., 7 916 ..., 1 415 ...).
	if strings.Count(t, "(") != strings.Count(t, ")") {
		return false
	}
	return strings.HasPrefix(t, "+") || len(d) <= 12
}

// phoneKey makes +7 916 ... and 8 916 ... (Russia's two prefixes) the same
// number.
func phoneKey(d string) string {
	if len(d) == 11 && (d[0] == '7' || d[0] == '8') {
		return "7" + d[1:]
	}
	return d
}

func digits(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func digitsAndLetters(s string) string { return strings.ReplaceAll(strings.ToUpper(s), " ", "") }

// luhn reports whether a card number passes the Luhn check.
func luhn(d string) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// ibanOK checks an IBAN's length and its mod-97 checksum (ISO 13616).
func ibanOK(s string) bool {
	s = digitsAndLetters(s)
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	s = s[4:] + s[:4]
	rem := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}
