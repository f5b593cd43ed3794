package salesbot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are the widget_request token's claims (kommo-webhooks.md §4.3; the
// official PHP library's BotDisposableTokenModel reads the same).
type claims struct {
	jwt.RegisteredClaims
	AccountID  flexInt `json:"account_id"`
	Subdomain  string  `json:"subdomain"`
	EntityID   flexInt `json:"entity_id"`
	EntityType any     `json:"entity_type"` // 2 (leads) in practice; some senders write "lead"
	BotType    string  `json:"bot_type"`
	ClientUUID string  `json:"client_uuid"`
}

// flexInt is a JSON number or a string of digits.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || string(b) == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*f = flexInt(n)
	return nil
}

// verifyToken checks the widget_request JWT: an HMAC signature by the
// integration's client secret with HS512 (Kommo's) or HS256, nothing else
// (alg none included); exp required, exp, nbf and iat within the leeway;
// account_id the account's. The error is one line for the log.
func (s *Service) verifyToken(raw string, accountID int64) (*claims, error) {
	if raw == "" {
		return nil, errors.New("no token")
	}
	var c claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS512.Alg(), jwt.SigningMethodHS256.Alg()}),
		jwt.WithLeeway(s.o.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.now),
	)
	_, err := p.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return s.secret, nil })
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if int64(c.AccountID) != accountID {
		return nil, fmt.Errorf("token: account_id %d is not this account's (%d)", c.AccountID, accountID)
	}
	return &c, nil
}

// tokenLeadID is the lead the token is about: entity_id when entity_type
// says lead (2, "lead", "leads") or is absent.
func (c *claims) leadID() int64 {
	switch t := c.EntityType.(type) {
	case nil:
	case float64:
		if t != 2 {
			return 0
		}
	case string:
		if t != "2" && t != "lead" && t != "leads" {
			return 0
		}
	default:
		return 0
	}
	return int64(c.EntityID)
}

var _ json.Unmarshaler = (*flexInt)(nil)

// VerifyToken checks a widget_request token as the handler does, at now,
// and returns the lead it is about (0 when it names none).
func VerifyToken(token, clientSecret string, accountID int64, now time.Time, leeway time.Duration) (int64, error) {
	s := &Service{o: Options{Leeway: leeway, Now: func() time.Time { return now }}, secret: []byte(clientSecret)}
	c, err := s.verifyToken(token, accountID)
	if err != nil {
		return 0, err
	}
	return c.leadID(), nil
}
