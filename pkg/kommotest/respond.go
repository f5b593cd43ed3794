package kommotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
)

const (
	halJSON     = "application/hal+json"
	problemJSON = "application/problem+json"
	maxBody     = 8 << 20
)

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "kommotest: cannot encode the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// fieldError is one entry of Kommo's "validation-errors".
type fieldError struct {
	Code   string `json:"code"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

type requestErrors struct {
	RequestID string       `json:"request_id"`
	Errors    []fieldError `json:"errors"`
}

// problemBody is Kommo's application/problem+json error (kommo-api.md §6).
type problemBody struct {
	ValidationErrors []requestErrors `json:"validation-errors,omitempty"`
	Hint             string          `json:"hint,omitempty"`
	Title            string          `json:"title"`
	Type             string          `json:"type"`
	Status           int             `json:"status"`
	Detail           string          `json:"detail"`
}

var problemTitles = map[int]string{
	400: "Bad Request",
	401: "Unauthorized",
	403: "Forbidden",
	404: "Not Found",
	415: "Unsupported Media Type",
	429: "Too Many Requests",
	502: "Bad Gateway",
	503: "Service Unavailable",
}

func problem(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, problemJSON, problemBody{
		Title:  problemTitles[status],
		Type:   fmt.Sprintf("https://httpstatus.es/%d", status),
		Status: status,
		Detail: detail,
	})
}

func validationProblem(w http.ResponseWriter, errs []requestErrors) {
	writeJSON(w, http.StatusBadRequest, problemJSON, problemBody{
		ValidationErrors: errs,
		Title:            "Bad Request",
		Type:             "https://httpstatus.es/400",
		Status:           400,
		Detail:           "Request validation failed",
	})
}

// queryProblem reports one invalid query parameter the way Kommo reports body fields.
func queryProblem(w http.ResponseWriter, code, path, detail string) {
	validationProblem(w, []requestErrors{{RequestID: "0", Errors: []fieldError{{Code: code, Path: path, Detail: detail}}}})
}

// gatewayError answers like the proxy in front of Kommo does when the backend
// fails: an HTML page for 502, a problem document for 503. Clients must cope with both.
func gatewayError(w http.ResponseWriter, status int) {
	if status == http.StatusBadGateway {
		body := "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
		return
	}
	problem(w, status, "The service is temporarily unavailable, try again later")
}

// readJSONBody enforces what Kommo enforces for POST and PATCH: a JSON content
// type and a body that parses. It writes the error itself and reports false.
func readJSONBody(w http.ResponseWriter, r *http.Request) (json.RawMessage, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		problem(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		problem(w, http.StatusBadRequest, "Cannot read the request body")
		return nil, false
	}
	if len(body) > maxBody {
		problem(w, http.StatusBadRequest, "The request body is too large")
		return nil, false
	}
	if !json.Valid(body) {
		problem(w, http.StatusBadRequest, "Syntax error: the request body is not valid JSON")
		return nil, false
	}
	return json.RawMessage(bytes.TrimSpace(body)), true
}

func jsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	switch raw[0] {
	case '{', '[', '"', 'n', 't', 'f':
		return raw[0]
	}
	return '0' // a number
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || jsonKind(raw) == 'n' }

// jsonInt accepts a JSON integer (not a string, not a fraction).
func jsonInt(raw json.RawMessage) (int64, bool) {
	if jsonKind(raw) != '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	return n, err == nil
}

func jsonString(raw json.RawMessage) (string, bool) {
	if jsonKind(raw) != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

func jsonObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	if jsonKind(raw) != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	return m, json.Unmarshal(raw, &m) == nil
}

func jsonArray(raw json.RawMessage) ([]json.RawMessage, bool) {
	if jsonKind(raw) != '[' {
		return nil, false
	}
	var a []json.RawMessage
	return a, json.Unmarshal(raw, &a) == nil
}
