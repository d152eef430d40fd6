// Package etcdtest starts embedded etcd for tests and ties its lifetime,
// and that of its clients, to a testing.TB.
//
// It is a package of its own so that production binaries, which link
// etcdlocal for `mig serve`, do not link package testing.
//
// Cleanups run last-registered first, so a server started here is closed
// after every client made here for it, as etcdlocal.Server.Close asks:
//
//	srv := etcdtest.Start(t)
//	cli := etcdtest.Client(t, srv.Endpoints()...)
package etcdtest
