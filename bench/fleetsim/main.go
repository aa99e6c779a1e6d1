// Command fleetsim simulates a fleet of coffer agents in one process for
// bench/fleet.sh: each simulated host has its own enrolled identity, its
// own loopback source address and its own TLS connection (HTTP/2) to one
// real `coffer server run`, as real hosts would.
//
//	fleetsim enroll -dir SRV -addr HOST:PORT -n N -out IDS
//
// mints N one-time enrollment tokens with the code `coffer server token`
// runs (admin.IssueToken on the server's state directory, while the server
// runs), then redeems them against the server's enrollment endpoint,
// several at a time, each from its own source address, and saves each
// identity under IDS/NAME as `coffer enroll` does. It prints the client
// names, one a line.
//
//	fleetsim run -ids IDS -addr HOST:PORT -admin SRV/admin
//
// connects every identity's control stream (GET /v1/agent/stream),
// verifies the signed policy that comes first (internal/fleet/policy),
// computes the next backup with internal/schedule as the agent does, and
// at that time posts a `running` report and then a `succeeded` report (no
// backup is made: the benchmark measures the control plane). Once every
// host has reported, it asks the server for its jobs with the admin
// identity and prints
//
//	agents=N connected=N jobs=N p50_start_delay_ms=X p99_start_delay_ms=Y
//
// where a host's start delay is the time the server's answer to its
// running report arrived (the server answers once the report is
// committed) minus the scheduled time. The server's own stamp, the job's
// `created`, is taken when the report arrives, before it waits for the
// commit; its percentiles are printed on standard error beside.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fleetsim enroll|run [flags]")
		os.Exit(2)
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "enroll":
		err = enrollMain(ctx, os.Args[2:])
	case "run":
		err = runMain(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

// sourceAddr is host i's own loopback address, 127.1.X.Y: on Linux the
// whole of 127.0.0.0/8 reaches the loopback interface, and the server's
// per-source limits (pending handshakes, enrollment attempts) then see
// distinct hosts, as they would in a real fleet.
func sourceAddr(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 1, byte(i/250), byte(i%250+1))}
}

// clientName is host i's name.
func clientName(i int) string { return fmt.Sprintf("sim%05d", i) }

func enrollMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	dir := fs.String("dir", "", "server state directory")
	addr := fs.String("addr", "", "server address HOST:PORT")
	n := fs.Int("n", 1000, "hosts")
	out := fs.String("out", "", "directory for the identities")
	workers := fs.Int("workers", 16, "enrollments in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *addr == "" || *out == "" || *n < 1 {
		return errors.New("enroll: -dir, -addr, -out and -n are required")
	}
	return enrollAll(ctx, *dir, *addr, *out, *n, *workers)
}

func runMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	ids := fs.String("ids", "", "directory of the identities (from enroll)")
	addr := fs.String("addr", "", "server address HOST:PORT")
	adminDir := fs.String("admin", "", "the admin identity directory (SRV/admin)")
	wait := fs.Duration("wait", 3*time.Minute, "how long after the latest scheduled time to wait for reports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ids == "" || *addr == "" || *adminDir == "" {
		return errors.New("run: -ids, -addr and -admin are required")
	}
	names, err := listIdentities(*ids)
	if err != nil {
		return err
	}
	res, err := simulate(ctx, *ids, *addr, names, *wait)
	if err != nil {
		return err
	}
	jobs, err := serverJobs(ctx, *adminDir, *addr, res.scheduled)
	if err != nil {
		return err
	}
	delays := res.agentSide()
	fmt.Printf("agents=%d connected=%d jobs=%d p50_start_delay_ms=%d p99_start_delay_ms=%d\n",
		len(names), res.connected, jobs, percentile(delays, 50).Milliseconds(), percentile(delays, 99).Milliseconds())
	return nil
}

// listIdentities returns the names of the identity directories under dir.
func listIdentities(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "sim") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no identities in %s", filepath.Base(dir))
	}
	sort.Strings(names)
	return names, nil
}

// percentile returns the p-th percentile of ds (nearest rank), 0 for none.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := (p*len(s) + 99) / 100
	return s[min(max(k, 1), len(s))-1]
}
