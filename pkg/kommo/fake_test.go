package kommo

import (
	"context"
	"errors"
	"testing"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

func fakeClient(t *testing.T, srv *kommotest.Server, guard *Guard) *Client {
	t.Helper()
	c, err := New(Options{BaseURL: srv.KommoURL, Tokens: StaticToken(srv.LongLivedToken()), Retry: fastRetry, Guard: guard})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Notes of a lead the user may not see fail that lead with the reason; the
// client goes on.
func TestRightsForbiddenFailsOnlyThatLead(t *testing.T) {
	probe := kommotest.StartT(t, kommotest.Options{Leads: 3})
	leads := probe.Leads()
	srv := kommotest.StartT(t, kommotest.Options{Leads: 3, RESTRateLimit: -1, NotesForbidden: []int64{leads[0].ID}})
	c := fakeClient(t, srv, nil)
	ctx := context.Background()

	for _, call := range []func() error{
		func() error { _, err := c.LeadNotes(ctx, leads[0].ID, NotesQuery{}); return err },
		func() error {
			_, err := c.AddLeadNotes(ctx, []NewNote{{EntityID: leads[0].ID, NoteType: "common", Params: NoteParams{Text: "x"}}})
			return err
		},
	} {
		err := call()
		var ke *Error
		var blocked *IPBlockedError
		if errors.As(err, &blocked) || !errors.As(err, &ke) || ke.Status != 403 || ke.Title != "Forbidden" || ke.Detail == "" {
			t.Fatalf("err = %v, want an *Error 403 with title and detail", err)
		}
	}
	if _, err := c.LeadNotes(ctx, leads[1].ID, NotesQuery{}); err != nil {
		t.Errorf("another lead after the 403: %v", err)
	}
	if len(srv.Notes(leads[0].ID)) != 0 {
		t.Error("a note was stored on the forbidden lead")
	}
}

// The fake's IP block 403 (a problem document that says so) ends every call,
// REST and token endpoint alike, through the one Guard they share.
func TestIPBlockOnTheTokenEndpointStopsTheRESTClient(t *testing.T) {
	srv := kommotest.StartT(t, kommotest.Options{Leads: 2, RESTRateLimit: 1, BlockAfter429s: 1})
	fo := srv.Options()
	guard := &Guard{}
	c := fakeClient(t, srv, guard)
	app := OAuthApp{
		BaseURL: srv.KommoURL, ClientID: fo.ClientID, ClientSecret: fo.ClientSecret, RedirectURI: fo.RedirectURI,
		Retry: fastRetry, Guard: guard,
	}
	ctx := context.Background()
	if _, err := c.Account(ctx); err != nil {
		t.Fatal(err)
	}
	// The second request in the same second is a 429, which blocks the IP
	// (BlockAfter429s 1); the retry meets the block's 403.
	_, err := app.Exchange(ctx, srv.AuthCode())
	var blocked *IPBlockedError
	if !errors.As(err, &blocked) {
		t.Fatalf("Exchange: err = %v, want *IPBlockedError", err)
	}
	if guard.Blocked() != blocked {
		t.Errorf("the guard holds %v, want the token endpoint's block", guard.Blocked())
	}
	before := srv.Stats()
	if _, err := c.Account(ctx); !errors.As(err, &blocked) {
		t.Errorf("REST after the block: err = %v, want *IPBlockedError", err)
	}
	if _, err := app.Refresh(ctx, "any"); !errors.As(err, &blocked) {
		t.Errorf("Refresh after the block: err = %v, want *IPBlockedError", err)
	}
	if after := srv.Stats(); after.RESTRequests != before.RESTRequests || after.OAuthRequests != before.OAuthRequests {
		t.Errorf("requests sent after the block: %+v -> %+v", before, after)
	}
}
