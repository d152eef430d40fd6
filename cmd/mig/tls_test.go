package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/rpc/migclient"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// serial returns a random certificate serial number.
func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Unix(1<<33, 0),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key (PEM) signed by the CA, for the
// server (valid for 127.0.0.1) or for a client.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(1<<33, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeMutualTLS serves over TLS with --client-ca: a client without a
// certificate, or with one from another CA, is refused during the
// handshake; a client with a certificate from the CA gets IDs.
func TestServeMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, "mig test CA")
	serverCert, serverKey := ca.issue(t, "mig server", true)
	clientCert, clientKey := ca.issue(t, "mig client", false)
	otherCert, otherKey := newTestCA(t, "another CA").issue(t, "stranger", false)

	s := startServe(t, "--etcd", etcdEndpoint(t),
		"--tls-cert", writeFile(t, dir, "server.pem", serverCert),
		"--tls-key", writeFile(t, dir, "server-key.pem", serverKey),
		"--client-ca", writeFile(t, dir, "ca.pem", ca.pem))
	base := "https://" + s.addr

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	httpClient := func(certPEM, keyPEM []byte) *http.Client {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}

	for _, tt := range []struct {
		name      string
		cert, key []byte
		tls12     bool
	}{
		{name: "no certificate"},
		{name: "no certificate, TLS 1.2", tls12: true},
		{name: "certificate of another CA", cert: otherCert, key: otherKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hc := httpClient(tt.cert, tt.key)
			if tt.tls12 {
				hc.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS12
			}
			resp, err := hc.Post(base+"/twirp/mig.v1.IDService/NextIDs", "application/json", strings.NewReader(`{"count":3}`))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("refused client got an answer: %s", resp.Status)
			}
			if !strings.Contains(err.Error(), "tls") {
				t.Errorf("error %q does not come from the TLS handshake", err)
			}
			// The rpc client gets the same refusal, as unavailable after
			// its one endpoint failed.
			c := newRPCClient(t, []string{base}, migclient.WithHTTPClient(hc))
			if _, _, err := c.NextIDs(t.Context(), 1); err == nil {
				t.Error("rpc client without an accepted certificate got IDs")
			}
		})
	}

	c := newRPCClient(t, []string{base}, migclient.WithHTTPClient(httpClient(clientCert, clientKey)))
	for _, n := range []int{1, 100} {
		if ids, _, err := c.NextIDs(t.Context(), n); err != nil || len(ids) != n {
			t.Fatalf("NextIDs(%d) with a client certificate: %v, %d IDs", n, err, len(ids))
		}
	}
}
