package etcdcluster

import (
	"context"
	"testing"
	"time"
)

func startCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
