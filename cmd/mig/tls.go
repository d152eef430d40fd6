package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
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

// peerClient returns how this node reaches the other nodes it forwards
// sequence calls to: plain HTTP without TLS; with TLS, HTTPS trusting the
// system's roots and the client CA (nodes of one deployment usually share
// it), presenting the server's own certificate when clients must show
// one. It returns the scheme too.
func (t tlsFiles) peerClient() (string, *http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if !t.enabled() {
		return "http", &http.Client{Transport: tr}, nil
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if t.clientCA != "" {
		pem, err := os.ReadFile(t.clientCA)
		if err != nil {
			return "", nil, fmt.Errorf("--client-ca: %w", err)
		}
		roots.AppendCertsFromPEM(pem)
		cert, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			return "", nil, fmt.Errorf("loading --tls-cert %s and --tls-key %s: %w", t.cert, t.key, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = c
	return "https", &http.Client{Transport: tr}, nil
}
