package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// errLongSource is the upload's error when the source writes more bytes
// than it announced.
var errLongSource = errors.New("source wrote more bytes than announced")

// streamReader reads what src writes, for an upload of exactly size
// bytes. It holds back the last bytes until src has returned, so that a
// source that fails, or writes more or fewer bytes than size, fails the
// upload before the server can publish it.
type streamReader struct {
	pr   *io.PipeReader
	done chan struct{}
	err  error // src's outcome; read after done is closed
	left int64 // bytes not yet delivered
}

func newStreamReader(ctx context.Context, src io.WriterTo, size int64) *streamReader {
	pr, pw := io.Pipe()
	r := &streamReader{pr: pr, done: make(chan struct{}), left: size}
	go func() {
		defer close(r.done)
		n, err := src.WriteTo(&limitWriter{w: pw, left: size})
		switch {
		case err != nil:
		case n != size:
			err = fmt.Errorf("source wrote %d bytes, want %d: %w", n, size, io.ErrUnexpectedEOF)
		}
		r.err = err
		if err == nil {
			err = io.EOF
		}
		_ = pw.CloseWithError(err)
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = pr.CloseWithError(ctx.Err())
		case <-r.done:
		}
	}()
	return r
}

// Read implements io.Reader. The read that delivers the last byte first
// waits for src to return and fails if src failed.
func (r *streamReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		<-r.done
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.pr.Read(p)
	r.left -= int64(n)
	if err == io.EOF {
		err = fmt.Errorf("source ended %d bytes early: %w", r.left, io.ErrUnexpectedEOF)
	}
	if err == nil && r.left == 0 {
		<-r.done
		err = r.err
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Close stops src (its next write fails) and waits for it to return.
func (r *streamReader) Close() {
	_ = r.pr.CloseWithError(errors.New("upload ended"))
	<-r.done
}

// limitWriter refuses a write that would take the total past left,
// without passing any of it on.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, errLongSource
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}
