package etcdlocal

import (
	"os"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// serveFailedMsg is what embed logs, at error level, whenever one of its
// listeners stops serving, including on every ordinary Close.
const serveFailedMsg = "setting up serving from embedded etcd failed."

// defaultLogger logs errors only, as JSON to standard error: etcd logs at
// info level many times a second.
func defaultLogger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.ErrorLevel))
}

// quietShutdown drops embed's "serving failed" errors once the member is
// being stopped on purpose, so that a stop does not look like a failure in
// test output or in `mig serve`'s log. Every other entry passes.
type quietShutdown struct {
	zapcore.Core
	stopping *atomic.Bool
}

func (q quietShutdown) With(fields []zapcore.Field) zapcore.Core {
	return quietShutdown{Core: q.Core.With(fields), stopping: q.stopping}
}

func (q quietShutdown) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == serveFailedMsg && q.stopping.Load() {
		return ce
	}
	return q.Core.Check(e, ce)
}

// withQuietShutdown wraps lg (or the default logger when lg is nil).
func withQuietShutdown(lg *zap.Logger, stopping *atomic.Bool) *zap.Logger {
	if lg == nil {
		lg = defaultLogger()
	}
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return quietShutdown{Core: c, stopping: stopping}
	}))
}
