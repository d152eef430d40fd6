// Package fakentp is an NTPv4 server on a loopback UDP port whose clock
// is the host's plus an offset that can be changed while it runs. Tests
// check the NTP monitor against it, and the fault scenarios give it to
// their servers, so that a wall clock they step is judged against time
// that did not step.
package fakentp

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"time"

	"github.com/migsvc/mig/clock"
)

// Server answers every 48-byte NTP request on its port. Safe for
// concurrent use.
type Server struct {
	conn    *net.UDPConn
	src     clock.Source
	offset  atomic.Int64 // nanoseconds added to the host's wall clock
	stratum atomic.Uint32
	silent  atomic.Bool
	got     chan struct{}
	done    chan struct{}
}

// Start listens on 127.0.0.1 and answers with the host's wall clock plus
// offset, as a stratum 2 server, until Close.
func Start(offset time.Duration) (*Server, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	s := &Server{conn: conn, src: clock.NewReal(), got: make(chan struct{}, 1), done: make(chan struct{})}
	s.offset.Store(int64(offset))
	s.stratum.Store(2)
	go s.serve()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// SetOffset changes how far the server's clock is ahead of the host's
// (negative: behind).
func (s *Server) SetOffset(d time.Duration) { s.offset.Store(int64(d)) }

// SetStratum changes the stratum it answers with; 0 is a kiss of death.
func (s *Server) SetStratum(n uint8) { s.stratum.Store(uint32(n)) }

// SetSilent makes it read requests without answering them, or answer
// again.
func (s *Server) SetSilent(silent bool) { s.silent.Store(silent) }

// Requests receives after a request arrives (answered or not); arrivals
// while one is pending are not queued.
func (s *Server) Requests() <-chan struct{} { return s.got }

// Close stops the server and waits for its goroutine.
func (s *Server) Close() {
	s.conn.Close()
	<-s.done
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 512)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		select {
		case s.got <- struct{}{}:
		default:
		}
		if n < 48 || s.silent.Load() {
			continue
		}
		off := time.Duration(s.offset.Load())
		recv := s.src.Now().Wall.Add(off)
		var resp [48]byte
		resp[0] = 0<<6 | 4<<3 | 4 // no leap warning, version 4, mode 4 (server)
		resp[1] = byte(s.stratum.Load())
		resp[2] = 6    // poll: 2^6 s
		resp[3] = 0xec // precision: 2^-20 s
		copy(resp[12:16], []byte{127, 0, 0, 1})
		// Reference time a second ago: fresh, and not after transmit.
		putTime(resp[16:24], recv.Add(-time.Second))
		// Origin: the request's transmit field, which the client checks.
		copy(resp[24:32], buf[40:48])
		putTime(resp[32:40], recv)
		putTime(resp[40:48], s.src.Now().Wall.Add(off))
		_, _ = s.conn.WriteToUDP(resp[:], from) // a lost answer is a timeout to the client, as on a network
	}
}

// putTime writes t as NTP seconds since 1900 and a 32-bit fraction.
func putTime(b []byte, t time.Time) {
	const unixToNTP = 2_208_988_800
	secs := uint64(t.Unix() + unixToNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	binary.BigEndian.PutUint64(b, secs<<32|frac)
}
