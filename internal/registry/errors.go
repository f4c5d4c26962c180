package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Kind classifies a failure so callers can decide whether to retry.
type Kind string

const (
	KindNotFound     Kind = "NotFound"
	KindUnauthorized Kind = "Unauthorized"
	KindTimeout      Kind = "Timeout"
	KindTooLarge     Kind = "TooLarge"
	KindInvalid      Kind = "Invalid"
	// KindUnavailable is a registry or network fault worth retrying.
	KindUnavailable Kind = "Unavailable"
)

// Error is a classified registry or image failure.
type Error struct {
	Kind Kind
	Ref  string
	Err  error
}

func (e *Error) Error() string {
	if e.Ref == "" {
		return fmt.Sprintf("%s: %v", e.Kind, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Ref, kindText[e.Kind], e.Err)
}

var kindText = map[Kind]string{
	KindNotFound:     "image not found",
	KindUnauthorized: "not authorized to pull",
	KindTimeout:      "timed out",
	KindTooLarge:     "image too large",
	KindInvalid:      "invalid image",
	KindUnavailable:  "registry unavailable",
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, registry.ErrNotFound) and friends work on any *Error of that kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Ref == "" && t.Err == nil && t.Kind == e.Kind
}

// Sentinels for errors.Is.
var (
	ErrNotFound     = &Error{Kind: KindNotFound}
	ErrUnauthorized = &Error{Kind: KindUnauthorized}
	ErrTimeout      = &Error{Kind: KindTimeout}
	ErrTooLarge     = &Error{Kind: KindTooLarge}
	ErrInvalid      = &Error{Kind: KindInvalid}
	ErrUnavailable  = &Error{Kind: KindUnavailable}
)

// KindOf returns the kind of a classified error, or "" if err is not one.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// Detail is what err says beyond what an *Error's Ref and Kind already tell (the messages that
// quote it name the image and the kind themselves), redacted: safe to show whoever submitted the
// workload. "" for nil.
func Detail(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var e *Error
	if errors.As(err, &e) && e.Err != nil {
		msg = strings.Replace(msg, e.Error(), e.Err.Error(), 1)
	}
	return Redact(msg)
}

var urlRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// Redact cuts the user information, query and fragment from every URL in s. Registry errors
// echo request URLs: a mirror's may carry user:password, a token or blob redirect's a token or
// a signature in its query.
func Redact(s string) string {
	return urlRE.ReplaceAllStringFunc(s, func(raw string) string {
		// the punctuation of the sentence around the URL ("GET https://…/1: UNAUTHORIZED")
		trimmed := strings.TrimRight(raw, ".,:;)]}")
		tail := raw[len(trimmed):]
		u, err := url.Parse(trimmed)
		if err != nil {
			scheme, _, _ := strings.Cut(raw, "://")
			return scheme + "://(redacted)" + tail
		}
		if u.User == nil && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" {
			return raw
		}
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		return u.String() + tail
	})
}

// Permanent reports whether retrying soon cannot help.
func Permanent(err error) bool {
	switch KindOf(err) {
	case KindNotFound, KindUnauthorized, KindTooLarge, KindInvalid:
		return true
	}
	return false
}

// classify wraps err from ggcr or the network with its kind.
func classify(ctx context.Context, ref string, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
		return &Error{Kind: KindTimeout, Ref: ref, Err: err}
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return &Error{Kind: KindTimeout, Ref: ref, Err: err}
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case terr.StatusCode == http.StatusNotFound:
			return &Error{Kind: KindNotFound, Ref: ref, Err: err}
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden:
			return &Error{Kind: KindUnauthorized, Ref: ref, Err: err}
		}
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return &Error{Kind: KindNotFound, Ref: ref, Err: err}
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return &Error{Kind: KindUnauthorized, Ref: ref, Err: err}
			}
		}
	}
	return &Error{Kind: KindUnavailable, Ref: ref, Err: err}
}

// ShortDigest is "sha256:" and the first 12 hex digits of a digest, as people quote them.
func ShortDigest(d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return "sha256:" + hex
}
