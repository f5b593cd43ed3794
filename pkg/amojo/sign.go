package amojo

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// Sign returns the X-Signature of a Chats API request: lowercase hex
// HMAC-SHA1, keyed with the channel secret's ASCII bytes (not hex-decoded),
// over UPPER(method), Content-MD5, Content-Type, Date and the URL path
// without its query, joined by "\n" with no trailing newline.
//
// https://developers.kommo.com/reference/chats-api-authorization-and-headers
func Sign(secret, method, contentMD5, contentType, date, path string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(strings.Join([]string{strings.ToUpper(method), contentMD5, contentType, date, path}, "\n")))
	return hex.EncodeToString(mac.Sum(nil))
}

// contentMD5 is the Content-MD5 header the Chats API wants: lowercase hex
// (not base64) of the exact body bytes; md5("") for a GET.
func contentMD5(body []byte) string {
	sum := md5.Sum(body)
	return hex.EncodeToString(sum[:])
}
