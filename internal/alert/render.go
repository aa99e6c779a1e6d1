package alert

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/termesc"
)

// maxSubject bounds a mail subject in bytes, before encoding.
const maxSubject = 200

// Subject is a mail subject for one event ("coffer: backup missed: web1")
// or a digest of several. Host-controlled text is escaped (termesc), so a
// subject is one line of printable characters.
func Subject(events []Event) string {
	if len(events) == 1 {
		e := events[0]
		s := "coffer: " + e.Kind.Title()
		if e.Client != "" {
			s += ": " + termesc.Name(e.Client)
		}
		return clip(s, maxSubject)
	}
	counts := map[Kind]int{}
	for _, e := range events {
		counts[e.Kind]++
	}
	parts := make([]string, 0, len(counts))
	for _, k := range Kinds() {
		if n := counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k.Title()))
		}
	}
	return clip(fmt.Sprintf("coffer: digest of %d events: %s", len(events), strings.Join(parts, ", ")), maxSubject)
}

// Body is a plain-text message for events: one block each, every
// host-controlled string escaped so that it stays on its line.
func Body(events []Event) string {
	var b strings.Builder
	if len(events) > 1 {
		fmt.Fprintf(&b, "%d events\n\n", len(events))
	}
	for i, e := range events {
		if i > 0 {
			b.WriteString("\n")
		}
		writeEvent(&b, e)
	}
	return b.String()
}

func writeEvent(b *strings.Builder, e Event) {
	line := func(label, value string) {
		if value != "" {
			fmt.Fprintf(b, "%-9s %s\n", label+":", termesc.Name(value))
		}
	}
	line("event", e.Kind.Title())
	line("client", e.Client)
	if len(e.Groups) > 0 {
		line("groups", strings.Join(e.Groups, ", "))
	}
	line("time", e.Time.UTC().Format(time.RFC3339))
	line("job", e.JobID)
	line("summary", e.Summary)
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "  %s: %s\n", termesc.Name(k), termesc.Name(e.Details[k]))
	}
}
