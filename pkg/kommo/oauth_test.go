package kommo

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// oauthServer serves the token endpoint with h, failing the test on any
// other path.
func oauthServer(t *testing.T, h http.HandlerFunc) (OAuthApp, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request: %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusTeapot)
	})
	mux.HandleFunc("POST /oauth2/access_token", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		wantHeader(t, r, "Content-Type", "application/json")
		wantHeader(t, r, "Authorization", "") // the token endpoint takes no bearer
		h(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return OAuthApp{
		BaseURL: srv.URL, ClientID: "app-id", ClientSecret: "app-secret", RedirectURI: "https://example.com/oauth",
		Retry: fastRetry,
	}, &n
}

const tokenAnswer = `{"token_type":"Bearer","expires_in":86400,"access_token":"acc-2","refresh_token":"ref-2","server_time":1700000000}`

func TestOAuthExchange(t *testing.T) {
	app, n := oauthServer(t, func(w http.ResponseWriter, r *http.Request) {
		wantJSONBody(t, r, `{"client_id":"app-id","client_secret":"app-secret","grant_type":"authorization_code","code":"def502","redirect_uri":"https://example.com/oauth"}`)
		writeJSON(w, 200, tokenAnswer)
	})
	got, err := app.Exchange(context.Background(), "def502")
	if err != nil {
		t.Fatal(err)
	}
	want := &TokenResponse{TokenType: "Bearer", ExpiresIn: 86400, AccessToken: "acc-2", RefreshToken: "ref-2", ServerTime: 1700000000}
	if !reflect.DeepEqual(got, want) || n.Load() != 1 {
		t.Errorf("got %+v after %d requests, want %+v after 1", got, n.Load(), want)
	}
}

func TestOAuthRefresh(t *testing.T) {
	app, n := oauthServer(t, func(w http.ResponseWriter, r *http.Request) {
		wantJSONBody(t, r, `{"client_id":"app-id","client_secret":"app-secret","grant_type":"refresh_token","refresh_token":"ref-1","redirect_uri":"https://example.com/oauth"}`)
		writeJSON(w, 200, tokenAnswer)
	})
	got, err := app.Refresh(context.Background(), "ref-1")
	if err != nil || got.AccessToken != "acc-2" || got.RefreshToken != "ref-2" || n.Load() != 1 {
		t.Errorf("got %+v, %v after %d requests", got, err, n.Load())
	}
}

func TestOAuthRejectedIsAuthError(t *testing.T) {
	for _, status := range []int{400, 401} {
		app, n := oauthServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, status, `{"hint":"Token has been revoked","title":"Некорректный запрос","type":"https://developers.amocrm.ru/v3/errors/OAuthProblemJson","status":400,"detail":"В запросе отсутствует ряд параметров или параметры невалидны"}`)
		})
		_, err := app.Refresh(context.Background(), "used-token")
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("%d: err = %v, want *AuthError", status, err)
		}
		var ke *Error
		if !errors.As(err, &ke) || ke.Status != status || ke.Hint != "Token has been revoked" {
			t.Errorf("%d: wrapped = %+v", status, ke)
		}
		if msg := err.Error(); !strings.Contains(msg, "Token has been revoked") || !strings.Contains(msg, "auth login") || strings.Contains(msg, "app-secret") {
			t.Errorf("%d: message %q", status, msg)
		}
		if n.Load() != 1 {
			t.Errorf("%d: %d requests, want 1", status, n.Load())
		}
	}
}

func TestOAuthNotRetriedOn5xx(t *testing.T) {
	// The server may have rotated the pair before failing: a second try
	// would send a dead refresh token.
	app, n := oauthServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) })
	_, err := app.Refresh(context.Background(), "ref-1")
	var ke *Error
	var ae *AuthError
	if !errors.As(err, &ke) || ke.Status != 502 || errors.As(err, &ae) {
		t.Errorf("err = %v, want a plain *Error 502", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

func TestOAuthRetriedOn429AndRefusedConnection(t *testing.T) {
	var calls atomic.Int32
	app, n := oauthServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(429)
			return
		}
		writeJSON(w, 200, tokenAnswer)
	})
	hc, dials := refusingFirst(t)
	app.HTTPClient = hc
	got, err := app.Exchange(context.Background(), "code")
	if err != nil || got.AccessToken != "acc-2" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if dials.Load() != 2 || n.Load() != 2 {
		t.Errorf("dials %d (want 2: refused, then the server), requests %d (want 2: the 429 and the success)", dials.Load(), n.Load())
	}
}

func TestOAuthAnswerWithoutToken(t *testing.T) {
	app, _ := oauthServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"token_type":"Bearer"}`) })
	if _, err := app.Exchange(context.Background(), "code"); err == nil || !strings.Contains(err.Error(), "no access_token") {
		t.Errorf("err = %v", err)
	}
}

func TestOAuthIncompleteApp(t *testing.T) {
	app := OAuthApp{BaseURL: "https://x.kommo.com", ClientID: "id", RedirectURI: "https://example.com"}
	if _, err := app.Exchange(context.Background(), "code"); err == nil || !strings.Contains(err.Error(), "kommo.client_secret") {
		t.Errorf("err = %v, want it to name kommo.client_secret", err)
	}
	app.ClientSecret = "s"
	if _, err := app.Exchange(context.Background(), ""); err == nil {
		t.Error("an empty code was sent")
	}
}
