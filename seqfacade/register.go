package seqfacade

import (
	"context"
	"log/slog"

	"github.com/migsvc/mig/clock"
)

// registerLoop is the life of a node's registration, for either kind of
// ownership: register, serve until the registration ends, register again,
// until ctx is done. A failed registration is retried with a doubling
// backoff (minRetry to maxRetry); the first failure of a streak is logged
// as a warning, the rest at debug, and each one is shown through setState.
// serve runs only with a registration, and must return when it ends or ctx
// is done; what to do after a lost registration is serve's business.
func registerLoop[R any](ctx context.Context, src clock.Source, log *slog.Logger, node string, setState func(string),
	register func(context.Context) (R, error), serve func(context.Context, R)) {
	backoff, failures := minRetry, 0
	for ctx.Err() == nil {
		r, err := register(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			lvl := slog.LevelWarn
			if failures > 0 {
				lvl = slog.LevelDebug // the first failure of a streak says it all
			}
			failures++
			setState(err.Error())
			log.Log(ctx, lvl, "seq facade: cannot register yet; retrying", "node", node, "err", err, "retry_in", backoff)
			if clock.Sleep(ctx, src, backoff) != nil {
				return
			}
			backoff = min(2*backoff, maxRetry)
			continue
		}
		backoff, failures = minRetry, 0
		serve(ctx, r)
	}
}
