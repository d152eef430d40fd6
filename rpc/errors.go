package rpc

import (
	"errors"
	"fmt"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
	"github.com/migsvc/mig/workerid"
)

// Errors of this package.
var (
	// ErrConfig is wrapped by every error NewServer returns for a bad
	// argument or option.
	ErrConfig = errors.New("rpc: invalid configuration")
)

// argError is a request field whose value is not allowed. It becomes
// invalid_argument; msg is a whole sentence starting with the field's name,
// such as "count 0 is not in 1..100000".
type argError struct {
	field string
	msg   string
	cause error // the domain error behind it, if any
}

func (e *argError) Error() string { return e.msg }
func (e *argError) Unwrap() error { return e.cause }

// bodyTooLargeError is a request whose declared length exceeds the server's
// limit; the server refuses it before reading it.
type bodyTooLargeError struct{ length, limit int64 }

func (e *bodyTooLargeError) Error() string {
	return fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", e.length, e.limit)
}

// isUnavailable reports whether err means "this node cannot prove a
// number would be safe right now": the worker's refusals to issue, all of
// the workerid.ErrUnavailable family, and the sequence node's. Such a
// request consumed nothing, so another node, or this one a little later,
// may well succeed.
func isUnavailable(err error) bool {
	return errors.Is(err, workerid.ErrUnavailable) ||
		errors.Is(err, seqfacade.ErrUnavailable) ||
		errors.Is(err, seqfacade.ErrNotOwner)
}

// twirpError turns an error from a handler into the Twirp error the client
// sees. It is the only place where errors become codes.
func twirpError(err error) twirp.Error {
	var (
		twerr   twirp.Error
		noOwner *seqfacade.NotOwnerError
		notHome *seqfacade.NotHomeError
		arg     *argError
		tooBig  *bodyTooLargeError
		message = err.Error()
	)
	switch {
	case errors.As(err, &twerr):
		return twerr // already translated (by twirp itself, or below)
	case errors.As(err, &arg):
		return twirp.WrapError(twirp.NewError(twirp.InvalidArgument, arg.msg).WithMeta("argument", arg.field), err)
	case errors.Is(err, mig.ErrBatchSize):
		// Requests are checked before they reach the issuer, so this is a
		// bug; still, it was the count that was wrong.
		return twirp.WrapError(twirp.NewError(twirp.InvalidArgument, message).WithMeta("argument", "count"), err)
	case errors.As(err, &noOwner) && !errors.Is(err, seqfacade.ErrUnavailable):
		// Another node serves the uid: the answer carries the table, so
		// the client goes there next, one round trip later. (A refused
		// max_seq write also says ErrNotOwner, with ErrUnavailable: that
		// one is unavailable, below.)
		return twirp.WrapError(twirp.NewError(twirp.FailedPrecondition, message).
			WithMeta(migv1.MetaRouting, migv1.RoutingMeta(noOwner.Routing)).
			WithMeta(migv1.MetaAddress, noOwner.Address), err)
	case errors.As(err, &notHome):
		// Another datacenter's own store serves the uid: this one never
		// will, and no node here can be sent the call.
		return twirp.WrapError(twirp.NewError(twirp.FailedPrecondition,
			fmt.Sprintf("uid's group %d is served by datacenter %s (each datacenter's sequence store serves its own uids): send the call to a server of %s", notHome.Group, notHome.Datacenter, notHome.Datacenter)).
			WithMeta(migv1.MetaDatacenter, notHome.Datacenter), err)
	case errors.Is(err, seqfacade.ErrInvalidUID), errors.Is(err, seqfacade.ErrDuplicateUID):
		return twirp.WrapError(twirp.NewError(twirp.InvalidArgument, message).WithMeta("argument", "uid"), err)
	case errors.Is(err, seqfacade.ErrBatchTooLarge):
		return twirp.WrapError(twirp.NewError(twirp.InvalidArgument, message).WithMeta("argument", "uids"), err)
	case errors.Is(err, seqfacade.ErrExhausted):
		return twirp.WrapError(twirp.NewError(twirp.ResourceExhausted, message), err)
	case errors.As(err, &tooBig):
		return twirp.WrapError(twirp.NewError(twirp.Malformed, message), err)
	case isUnavailable(err):
		return twirp.WrapError(twirp.NewError(twirp.Unavailable, message).WithMeta(migv1.MetaRetryable, "true"), err)
	}
	return twirp.InternalErrorWith(err)
}
