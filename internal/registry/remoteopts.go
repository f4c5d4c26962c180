package registry

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RemoteOptions are the options a request to ref's registry is made with (credentials,
// transport, user agent): for callers that read more than Fetch does, such as an image's
// referrers.
func (c *Client) RemoteOptions(ctx context.Context, ref name.Reference, kc authn.Keychain) []remote.Option {
	return c.remoteOptions(ctx, ref, kc)
}
