package webhookverify

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// credentials are an endpoint's accepted Basic and Bearer credentials,
// stored as SHA-256 digests so that every comparison is constant-time over
// a fixed length, whatever the length of what the client sent.
type credentials struct {
	basic  [][2][32]byte // user, password digests
	bearer [][32]byte
}

func (c *credentials) empty() bool { return len(c.basic) == 0 && len(c.bearer) == 0 }

func (c *credentials) addBasic(user, password string) {
	c.basic = append(c.basic, [2][32]byte{sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))})
}

func (c *credentials) addBearer(token string) {
	c.bearer = append(c.bearer, sha256.Sum256([]byte(token)))
}

// check reports whether the Authorization header carries one of the
// accepted credentials.
func (c *credentials) check(authorization string) bool {
	scheme, param, _ := strings.Cut(authorization, " ")
	param = strings.TrimLeft(param, " ")
	ok := 0
	switch {
	case providers.EqualFoldASCII(scheme, "Basic") && len(c.basic) > 0:
		raw, err := base64.StdEncoding.DecodeString(param)
		if err != nil {
			return false
		}
		user, password, found := strings.Cut(string(raw), ":")
		if !found {
			return false
		}
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
		for _, acct := range c.basic {
			ok |= subtle.ConstantTimeCompare(u[:], acct[0][:]) & subtle.ConstantTimeCompare(p[:], acct[1][:])
		}
	case providers.EqualFoldASCII(scheme, "Bearer") && len(c.bearer) > 0:
		t := sha256.Sum256([]byte(param))
		for _, tok := range c.bearer {
			ok |= subtle.ConstantTimeCompare(t[:], tok[:])
		}
	}
	return ok == 1
}

// challenge sets one WWW-Authenticate challenge per configured scheme.
func (c *credentials) challenge(h http.Header) {
	if len(c.basic) > 0 {
		h.Add("WWW-Authenticate", `Basic realm="webhook", charset="UTF-8"`)
	}
	if len(c.bearer) > 0 {
		h.Add("WWW-Authenticate", `Bearer realm="webhook"`)
	}
}
