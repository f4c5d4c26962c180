package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDetail(t *testing.T) {
	tooMany := &Error{Kind: KindTooLarge, Ref: "reg.example/huge:1", Err: errors.New("more than 500000 files in its layers")}
	unauthorized := &Error{Kind: KindUnauthorized, Ref: "reg.example/private:1",
		Err: errors.New(`GET https://puller:pull-s3cret@mirror.example/v2/private/manifests/1?ns=reg.example&token=t0ken#frag: UNAUTHORIZED`)}
	cases := map[string]struct {
		err  error
		want string
	}{
		"nil":                   {nil, ""},
		"classified":            {tooMany, "more than 500000 files in its layers"},
		"wrapped classified":    {fmt.Errorf("resolving: %w", tooMany), "resolving: more than 500000 files in its layers"},
		"no reference":          {&Error{Kind: KindTimeout, Err: errors.New("context deadline exceeded")}, "context deadline exceeded"},
		"plain":                 {errors.New("boom"), "boom"},
		"credentials and query": {unauthorized, "GET https://mirror.example/v2/private/manifests/1: UNAUTHORIZED"},
		"url without secrets":   {errors.New("GET https://reg.example/v2/: EOF"), "GET https://reg.example/v2/: EOF"},
		"unparsable url":        {errors.New("GET https://user:pa55@[::1/x: bad"), "GET https://(redacted): bad"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Detail(tc.err)
			if got != tc.want {
				t.Errorf("Detail = %q, want %q", got, tc.want)
			}
			for _, secret := range []string{"pull-s3cret", "pa55", "t0ken", "frag"} {
				if strings.Contains(got, secret) {
					t.Errorf("Detail %q echoes %q", got, secret)
				}
			}
		})
	}
}
