package kommotest_test

import (
	"fmt"
	"io"
	"net/http"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/kommotest"
)

func Example() {
	s, err := kommotest.Start(kommotest.Options{Leads: 10})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	req, _ := http.NewRequest("GET", s.KommoURL+"/api/v4/leads?with=chats", nil)
	req.Header.Set("Authorization", "Bearer "+s.LongLivedToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Println(string(body))
	fmt.Println(len(s.Leads()), s.Leads()[0].ID, s.ScopeID())
	// Output:
	// 400 application/problem+json
	// {"validation-errors":[{"request_id":"0","errors":[{"code":"NotSupportedChoice","path":"with","detail":"The value \"chats\" is not a valid choice for with."}]}],"title":"Bad Request","type":"https://httpstatus.es/400","status":400,"detail":"Request validation failed"}
	//
	// 10 10000001 f62a0162-46a7-430e-b06c-0ef798d76a21_52fd2a28-d2eb-4bd8-b862-a67934927b38
}
