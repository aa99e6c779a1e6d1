package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/wire"
)

// TestWriteErrorKeepsTheMessage: the sentinel that picks an answer's
// status adds no words to its message, so a refusal reads as the fleet's
// Authorize wrote it (the storage's "operation not permitted" prefix
// once crept in front of it).
func TestWriteErrorKeepsTheMessage(t *testing.T) {
	t.Parallel()
	refusal := errors.New(`refused for lack of rights: operator "op1" (scope group:g1) may not run-now client:web1: outside its scope`)
	cases := []struct {
		err    error
		status int
		code   wire.Code
		msg    string
	}{
		{Forbidden(refusal), http.StatusForbidden, wire.CodeForbidden, refusal.Error()},
		{fmt.Errorf("job 00: %w", serverdb.ErrNotFound), http.StatusNotFound, wire.CodeNotFound, "job 00: " + serverdb.ErrNotFound.Error()},
		{fmt.Errorf("%w: job 00 ended succeeded already", serverdb.ErrConflict), http.StatusConflict, wire.CodeExists, serverdb.ErrConflict.Error() + ": job 00 ended succeeded already"},
		{fmt.Errorf("%w: restore target %q is not under the host's restore root /r", ErrRefused, "/etc"), http.StatusBadRequest, wire.CodeBadRequest, `refused: restore target "/etc" is not under the host's restore root /r`},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		writeError(rec, c.err)
		var eb wire.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			t.Fatalf("%v: body %q: %v", c.err, rec.Body, err)
		}
		if rec.Code != c.status || eb.Code != c.code || eb.Message != c.msg {
			t.Errorf("%v: answered %d %s %q, want %d %s %q", c.err, rec.Code, eb.Code, eb.Message, c.status, c.code, c.msg)
		}
	}
	if !errors.Is(Forbidden(refusal), ErrForbidden) || !errors.Is(Forbidden(refusal), refusal) {
		t.Error("Forbidden must wrap ErrForbidden and the refusal")
	}
}
