package migclient

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/rpc/migv1"
)

// Errors of this package. Errors from servers are twirp.Error values
// (errors.As), with the code and message the server gave.
var (
	// ErrConfig is wrapped by every error New returns.
	ErrConfig = errors.New("migclient: invalid configuration")
	// ErrBadAnswer is wrapped by the error of a call whose answer broke
	// the protocol: the wrong number of IDs or sequences, IDs not strictly
	// increasing or with the sign bit set, a sequence of 0, an undecodable
	// time. It is not retried: the checker of a load test counts it as a
	// violation.
	ErrBadAnswer = errors.New("migclient: invalid answer from server")
)

// allFailedError is a call's error when every endpoint failed in a way
// that let it move on: each said unavailable or gave no answer, so the
// call as a whole is unavailable and worth retrying later. It wraps each
// endpoint's error.
func allFailedError(method string, errs []error) twirp.Error {
	causes := make([]string, len(errs))
	for i, err := range errs {
		causes[i] = err.Error()
	}
	msg := fmt.Sprintf("%s failed on all %d endpoints: %s", method, len(errs), strings.Join(causes, "; "))
	return twirp.WrapError(twirp.NewError(twirp.Unavailable, msg).WithMeta(migv1.MetaRetryable, "true"), errors.Join(errs...))
}
