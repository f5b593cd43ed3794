package pace_test

import (
	"context"
	"testing"
	"time"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/pace"
)

// A pacer at 5/s lets the first request go at once and makes the next wait
// about 200 ms: a deadline shorter than that is refused up front (the
// limiter knows the wait before it starts), a longer one is met.
func TestSpacing(t *testing.T) {
	p := pace.New(5)
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := p.Wait(short); err == nil {
		t.Fatal("a second request within 150 ms was allowed at 5 per second")
	}
	long, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := p.Wait(long); err != nil {
		t.Fatalf("the second request was refused a 5 s window: %v", err)
	}
}

// Zero means no limit: back-to-back requests are never refused a short
// deadline, where any limit would refuse the second.
func TestUnlimitedAndNil(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	p := pace.New(0)
	for range 100 {
		if err := p.Wait(short); err != nil && short.Err() == nil {
			t.Fatalf("an unlimited pacer refused a request: %v", err)
		}
	}
	var none *pace.Pacer
	if err := none.Wait(context.Background()); err != nil {
		t.Fatalf("a nil pacer: %v", err)
	}
}
