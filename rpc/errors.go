package rpc

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

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
// invalid_argument with meta argument=field; msg is a whole sentence for
// the client that names the field, such as "count 0 is not in
// 1..100000". Whatever of the client's own text it repeats (a field name
// the server does not know, a JSON value) is quoted.
type argError struct {
	field string
	msg   string
	cause error // the domain error behind it, if any
}

func (e *argError) Error() string { return e.msg }
func (e *argError) Unwrap() error { return e.cause }

// bodyError is a request body that cannot be read as a request at all: a
// JSON body that is not one JSON object. It becomes malformed; msg is a
// whole sentence for the client.
type bodyError struct{ msg string }

func (e *bodyError) Error() string { return e.msg }

// bodyTooLargeError is a request body beyond the server's limit: its
// declared length (refused unread), or -1 when it declared none and ran
// past the limit as it was read.
type bodyTooLargeError struct{ length, limit int64 }

func (e *bodyTooLargeError) Error() string {
	if e.length < 0 {
		return fmt.Sprintf("request body exceeds the limit of %d bytes", e.limit)
	}
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
// sees. It is the only place where errors become codes, and where their
// messages get the one style clients see: a sentence that names the
// field, the value and the limit, or says what the node cannot do and
// why, without the Go package names the domain's errors begin with
// ("seqfacade: invalid uid: ..."). The error itself is kept as the
// cause, for the log (an internal error is logged with it).
//
// It may be called on its own result: a Twirp error passes through,
// reworded only if its message still names a package.
func twirpError(err error) twirp.Error {
	var (
		twerr   twirp.Error
		noOwner *seqfacade.NotOwnerError
		notHome *seqfacade.NotHomeError
		arg     *argError
		body    *bodyError
		tooBig  *bodyTooLargeError
	)
	switch {
	case errors.As(err, &twerr):
		// Already translated: by this function, by Twirp itself, or the
		// answer of the node a call was forwarded to.
		return reworded(twerr)
	case errors.As(err, &arg):
		return twirp.WrapError(twirp.NewError(twirp.InvalidArgument, arg.msg).WithMeta("argument", arg.field), err)
	case errors.As(err, &body):
		return twirp.WrapError(twirp.NewError(twirp.Malformed, body.msg), err)
	case errors.As(err, &tooBig):
		return twirp.WrapError(twirp.NewError(twirp.Malformed, tooBig.Error()), err)
	case errors.Is(err, mig.ErrBatchSize):
		// Requests are checked before they reach the issuer, so this is a
		// bug; still, it was the count that was wrong.
		return twirp.WrapError(twirp.NewError(twirp.InvalidArgument, "count: "+clientText(err.Error())).WithMeta("argument", "count"), err)
	case errors.As(err, &noOwner) && !errors.Is(err, seqfacade.ErrUnavailable):
		// Another node serves the uid: the answer carries the table, so
		// the client goes there next, one round trip later. (A refused
		// max_seq write also says ErrNotOwner, with ErrUnavailable: that
		// one is unavailable, below.)
		return twirp.WrapError(twirp.NewError(twirp.FailedPrecondition,
			fmt.Sprintf("the uid's group %d is served by node %s at %q (routing version %d): send the call there; meta %s has the table", noOwner.Group, noOwner.Owner, noOwner.Address, noOwner.Routing.Version, migv1.MetaRouting)).
			WithMeta(migv1.MetaRouting, migv1.RoutingMeta(noOwner.Routing)).
			WithMeta(migv1.MetaAddress, noOwner.Address), err)
	case errors.As(err, &notHome):
		// Another datacenter's own store serves the uid: this one never
		// will, and no node here can be sent the call.
		return twirp.WrapError(twirp.NewError(twirp.FailedPrecondition,
			fmt.Sprintf("uid's group %d is served by datacenter %s (each datacenter's sequence store serves its own uids): send the call to a server of %s", notHome.Group, notHome.Datacenter, notHome.Datacenter)).
			WithMeta(migv1.MetaDatacenter, notHome.Datacenter), err)
	case errors.Is(err, seqfacade.ErrInvalidUID), errors.Is(err, seqfacade.ErrDuplicateUID):
		// The server checks uids before the node sees them; this is the
		// node's word where the two disagree.
		return twirp.WrapError(twirp.NewError(twirp.InvalidArgument, "uid: "+clientText(err.Error())).WithMeta("argument", "uid"), err)
	case errors.Is(err, seqfacade.ErrBatchTooLarge):
		return twirp.WrapError(twirp.NewError(twirp.InvalidArgument, "uids: "+clientText(err.Error())).WithMeta("argument", "uids"), err)
	case errors.Is(err, seqfacade.ErrExhausted):
		return twirp.WrapError(twirp.NewError(twirp.ResourceExhausted, clientText(err.Error())), err)
	case isUnavailable(err):
		return twirp.WrapError(twirp.NewError(twirp.Unavailable, clientText(err.Error())).WithMeta(migv1.MetaRetryable, "true"), err)
	}
	return twirp.WrapError(twirp.NewError(twirp.Internal, clientText(err.Error())), err)
}

// reworded returns twerr with its message in clientText's words, or
// twerr itself when they are the same.
func reworded(twerr twirp.Error) twirp.Error {
	msg := clientText(twerr.Msg())
	if msg == twerr.Msg() {
		return twerr
	}
	out := twirp.NewError(twerr.Code(), msg)
	for k, v := range twerr.MetaMap() {
		out = out.WithMeta(k, v)
	}
	return twirp.WrapError(out, twerr)
}

// phrases reword the domain's sentinel errors that would read badly with
// their package name taken away ("unavailable: ...").
var phrases = strings.NewReplacer(
	seqfacade.ErrUnavailable.Error(), "this node cannot answer safely now",
	seqfacade.ErrNotOwner.Error(), "this node no longer owns the uid's group",
	mig.ErrUnavailable.Error(), "this worker cannot issue IDs safely now",
)

// packagePrefix matches the "pkg: " a Go error puts before its text, for
// the packages whose errors can reach a client: ours, and those of the
// libraries under them. It matches at the start and after a space or an
// opening bracket (not after a quote, where the client's own text
// starts), and takes a run of them ("proto: json: ") at once.
var packagePrefix = regexp.MustCompile(`(^|[\s(\[])(?:(?:clock|etcdcluster|etcdlocal|faultproxy|h1|lease|mig|migclient|migv1|ntp|route|rpc|seqfacade|workerid|proto|protojson|json|http|net/http|tls|x509|etcdserver|etcdclient|mvcc|twirp): )+`)

// clientText is the text of a domain error as a client reads it: the
// sentinels reworded, every package prefix removed.
func clientText(s string) string {
	s = phrases.Replace(s)
	if !strings.Contains(s, ": ") {
		return s
	}
	return packagePrefix.ReplaceAllString(s, "$1")
}
