package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// tlsFiles are the server's TLS settings: none for plain HTTP, a
// certificate and key for HTTPS, and a client CA as well for mutual TLS.
type tlsFiles struct {
	cert, key, clientCA string
}

func (t tlsFiles) enabled() bool { return t.cert != "" }

// check reports settings that do not go together.
func (t tlsFiles) check() error {
	switch {
	case (t.cert == "") != (t.key == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case t.clientCA != "" && t.cert == "":
		return errors.New("--client-ca needs --tls-cert and --tls-key: client certificates are checked over TLS only")
	}
	return nil
}

// serverConfig loads the files into a server TLS configuration, or returns
// nil for plain HTTP. With a client CA, every client must present a
// certificate signed by it; a connection without one fails its handshake.
func (t tlsFiles) serverConfig() (*tls.Config, error) {
	if !t.enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return nil, fmt.Errorf("loading --tls-cert %s and --tls-key %s: %w", t.cert, t.key, err)
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if t.clientCA != "" {
		pool, err := loadCAs(t.clientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// loadCAs reads a PEM file of one or more CA certificates.
func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
