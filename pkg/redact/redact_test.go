package redact

import (
	"strings"
	"testing"
)

func TestRedactAndRestore(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"Call me at +7 916 123-45-67 or 8 (916) 123-45-67", "Call me at [PHONE_1] or [PHONE_1]"},
		{"mail: Ivan.Petrov@example.co.uk, please", "mail: [EMAIL_1], please"},
		{"card 4111 1111 1111 1111 ok", "card [CARD_1] ok"},
		{"card 4111 1111 1111 1112 is not a card", "card 4111 1111 1111 1112 is not a card"},
		{"IBAN DE89 3704 0044 0532 0130 00 thanks", "IBAN [IBAN_1] thanks"},
		{"IBAN DE00 3704 0044 0532 0130 00 bad checksum", "IBAN DE00 3704 0044 0532 0130 00 bad checksum"},
		{"budget 1 200 000 rub by 12.11.2026", "budget 1 200 000 rub by 12.11.2026"},
		{"US office +1 (415) 555-0134", "US office [PHONE_1]"},
		{"whatsapp 89161234567", "whatsapp [PHONE_1]"},
		{"order 12345 for 3 units", "order 12345 for 3 units"},
	}
	for _, c := range cases {
		r := New()
		got := r.Redact(c.in)
		if got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
		if back := r.Restore(got); back != c.in && !strings.Contains(c.in, "8 (916)") {
			t.Errorf("Restore(%q) = %q, want %q", got, back, c.in)
		}
	}
}

func TestPlaceholdersAreStableAndCounted(t *testing.T) {
	r := New()
	a := r.Redact("a@b.io and +44 20 7946 0958")
	b := r.Redact("again a@b.io, new c@d.io")
	if a != "[EMAIL_1] and [PHONE_1]" || b != "again [EMAIL_1], new [EMAIL_2]" {
		t.Fatalf("got %q and %q", a, b)
	}
	if c := r.Counts(); c[KindEmail] != 2 || c[KindPhone] != 1 || r.Total() != 4 {
		t.Errorf("counts %v, total %d", c, r.Total())
	}
	if got := r.Restore("write to [EMAIL_2] or [EMAIL_9]"); got != "write to c@d.io or [EMAIL_9]" {
		t.Errorf("Restore = %q", got)
	}
}

func TestRestoreParenthesised(t *testing.T) {
	r := New()
	r.Redact("call +7 916 123-45-67")
	if got := r.Restore("[contact: Ann, (PHONE_1)] or [PHONE_1), (PHONE_1]"); got != "[contact: Ann, +7 916 123-45-67] or [PHONE_1), (PHONE_1]" {
		t.Errorf("Restore = %q", got)
	}
}
