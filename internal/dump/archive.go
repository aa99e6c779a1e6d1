package dump

import (
	"archive/tar"
	"archive/zip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"golang.org/x/sys/unix"
)

// tarWriter writes PAX tar entries, as restic's dump does: permissions with
// setuid, setgid and sticky, owner IDs and names, modification, access and
// change times to the nanosecond, symlink targets, device numbers, and
// extended attributes as SCHILY.xattr records.
type tarWriter struct{ tw *tar.Writer }

func newTarWriter(w io.Writer) *tarWriter { return &tarWriter{tw: tar.NewWriter(w)} }

func (t *tarWriter) Close() error { return t.tw.Close() }

func (t *tarWriter) entry(_ context.Context, name string, n *repository.Node, content func(io.Writer) error) error {
	h := TarHeader(name, n)
	if h == nil {
		return nil // sockets have no tar form
	}
	if err := t.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	if content != nil {
		return content(t.tw)
	}
	return nil
}

// TarHeader returns the PAX header for node n named name, or nil for a
// socket, which tar cannot hold.
func TarHeader(name string, n *repository.Node) *tar.Header {
	h := &tar.Header{
		Name:       name,
		Mode:       int64(n.Mode & 0o7777),
		Uid:        int(n.UID),
		Gid:        int(n.GID),
		Uname:      n.User,
		Gname:      n.Group,
		ModTime:    time.Unix(0, n.MTimeNs),
		AccessTime: time.Unix(0, n.ATimeNs),
		ChangeTime: time.Unix(0, n.CTimeNs),
		Format:     tar.FormatPAX,
	}
	switch n.Type {
	case fsmeta.TypeFile:
		h.Typeflag, h.Size = tar.TypeReg, n.Size
	case fsmeta.TypeDir:
		h.Typeflag = tar.TypeDir
	case fsmeta.TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, string(n.LinkTarget)
	case fsmeta.TypeFIFO:
		h.Typeflag = tar.TypeFifo
	case fsmeta.TypeCharDev, fsmeta.TypeBlockDev:
		h.Typeflag = tar.TypeChar
		if n.Type == fsmeta.TypeBlockDev {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(n.Rdev)), int64(unix.Minor(n.Rdev))
	default:
		return nil
	}
	for _, x := range n.Xattrs {
		if !utf8.ValidString(x.Name) || strings.ContainsAny(x.Name, "=\x00") {
			continue // PAX keys are UTF-8 without '=': such a name has no tar form
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+string(x.Name)] = string(x.Value)
	}
	return h
}

// zipWriter writes zip entries: names, modes (symlinks hold their target
// as content, as Info-ZIP stores them), modification times, file data
// deflated.
type zipWriter struct{ zw *zip.Writer }

func newZipWriter(w io.Writer) *zipWriter { return &zipWriter{zw: zip.NewWriter(w)} }

func (z *zipWriter) Close() error { return z.zw.Close() }

func (z *zipWriter) entry(_ context.Context, name string, n *repository.Node, content func(io.Writer) error) error {
	h := &zip.FileHeader{Name: name, Modified: time.Unix(0, n.MTimeNs), Method: zip.Store}
	mode := fs.FileMode(n.Mode & 0o777)
	switch n.Type {
	case fsmeta.TypeFile:
		h.Method = zip.Deflate
		h.UncompressedSize64 = uint64(n.Size) // #nosec G115 -- sizes are checked non-negative by contentSize
	case fsmeta.TypeDir:
		mode |= fs.ModeDir
	case fsmeta.TypeSymlink:
		mode |= fs.ModeSymlink
	default:
		return nil // devices, fifos and sockets have no zip form
	}
	h.SetMode(mode)
	w, err := z.zw.CreateHeader(h)
	if err != nil {
		return fmt.Errorf("zip %s: %w", name, err)
	}
	switch {
	case content != nil:
		return content(w)
	case n.Type == fsmeta.TypeSymlink:
		_, err = w.Write(n.LinkTarget)
	}
	return err
}
