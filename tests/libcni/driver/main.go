// Command driver runs CNI plugins through libcni, the library container
// runtimes (containerd, CRI-O, podman) use, so Pisek's tests see pisek-cni
// exactly as a runtime drives it: libcni builds each plugin's stdin from
// the conflist, passes prevResult down a chain, injects runtimeConfig for
// the capabilities a plugin declares, caches ADD results for DEL and CHECK,
// and checks the versions the plugins report.
//
// It is built by the test rig (lab/src/libcni.rs) offline, in GOPATH mode,
// against Debian's golang-github-appc-cni-dev (libcni 1.1.2):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=<tmp> \
//	    go build -o <tmp>/libcni-driver ./tests/libcni/driver
//
// Usage:
//
//	driver add|check|del -conf LIST.conflist -bin-dir DIR[:DIR] -cache-dir DIR \
//	    -id CONTAINER_ID -netns PATH [-ifname eth0] [-args K=V;K=V] [-cap JSON]
//	driver bench -conf LIST.conflist -bin-dir DIR[:DIR] -cache-dir DIR \
//	    -netns-file FILE [-ifname eth0] [-id-prefix P] [-cap JSON]
//
// Every run prints exactly one JSON line on stdout. add/check/del:
//
//	{"ok":true,"result":{...}}                    (result: ADD only)
//	{"ok":false,"code":7,"msg":"...","details":"...","error":"..."}
//
// code, msg and details come from the plugin's CNI error (*types.Error);
// an error libcni raised itself (no such plugin, bad conflist) has code 0.
//
// bench reads one netns path per line, ADDs a pod into each in turn and
// then DELs them in the same order, timing only the libcni call (same
// process, same overhead for every plugin chain compared):
//
//	{"ok":true,"add_ns":[...],"del_ns":[...]}
//
// The exit status is 0 when the line says ok, 1 otherwise, 2 on bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// outcome is the one JSON line the driver prints.
type outcome struct {
	OK      bool            `json:"ok"`
	Result  json.RawMessage `json:"result,omitempty"`
	Code    uint            `json:"code,omitempty"`
	Msg     string          `json:"msg,omitempty"`
	Details string          `json:"details,omitempty"`
	Error   string          `json:"error,omitempty"`
	AddNs   []int64         `json:"add_ns,omitempty"`
	DelNs   []int64         `json:"del_ns,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: driver add|check|del|bench [flags]")
		os.Exit(2)
	}
	command := os.Args[1]
	flags := flag.NewFlagSet(command, flag.ContinueOnError)
	confPath := flags.String("conf", "", "the conflist file")
	binDir := flags.String("bin-dir", "/usr/lib/cni", "plugin directories, colon-separated")
	cacheDir := flags.String("cache-dir", "", "libcni's cache (results/); never /var/lib/cni in tests")
	id := flags.String("id", "", "container id")
	netns := flags.String("netns", "", "netns path")
	ifname := flags.String("ifname", "eth0", "interface name in the netns")
	cniArgs := flags.String("args", "", "CNI_ARGS, K=V;K=V")
	capJSON := flags.String("cap", "", "capability args, a JSON object (runtimeConfig)")
	netnsFile := flags.String("netns-file", "", "bench: netns paths, one a line")
	idPrefix := flags.String("id-prefix", "bench", "bench: container id prefix")
	if err := flags.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	// The cache must be the caller's: the default, /var/lib/cni, would
	// mix test runs with the host's own containers.
	if *confPath == "" || *cacheDir == "" {
		fmt.Fprintln(os.Stderr, "-conf and -cache-dir are required")
		os.Exit(2)
	}

	list, err := libcni.ConfListFromFile(*confPath)
	if err != nil {
		finish(failure(err))
	}
	capArgs := map[string]interface{}{}
	if *capJSON != "" {
		if err := json.Unmarshal([]byte(*capJSON), &capArgs); err != nil {
			finish(failure(fmt.Errorf("-cap: %w", err)))
		}
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*binDir), *cacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID:    *id,
		NetNS:          *netns,
		IfName:         *ifname,
		Args:           parseArgs(*cniArgs),
		CapabilityArgs: capArgs,
	}
	ctx := context.Background()

	switch command {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			finish(failure(err))
		}
		raw, err := json.Marshal(result)
		if err != nil {
			finish(failure(err))
		}
		finish(outcome{OK: true, Result: raw})
	case "check":
		finish(done(cni.CheckNetworkList(ctx, list, rt)))
	case "del":
		finish(done(cni.DelNetworkList(ctx, list, rt)))
	case "bench":
		finish(bench(ctx, cni, list, rt, *netnsFile, *idPrefix))
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", command)
		os.Exit(2)
	}
}

// bench ADDs one pod into each netns listed in netnsFile, then DELs them
// all, and reports each call's wall time. The first failure stops it.
func bench(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList,
	rt *libcni.RuntimeConf, netnsFile, idPrefix string) outcome {
	text, err := os.ReadFile(netnsFile)
	if err != nil {
		return failure(err)
	}
	var pods []libcni.RuntimeConf
	for i, path := range strings.Fields(string(text)) {
		pod := *rt
		pod.ContainerID = fmt.Sprintf("%s-%d", idPrefix, i)
		pod.NetNS = path
		pods = append(pods, pod)
	}
	out := outcome{OK: true}
	for i := range pods {
		start := time.Now()
		if _, err := cni.AddNetworkList(ctx, list, &pods[i]); err != nil {
			return failure(fmt.Errorf("ADD %s: %w", pods[i].ContainerID, err))
		}
		out.AddNs = append(out.AddNs, time.Since(start).Nanoseconds())
	}
	for i := range pods {
		start := time.Now()
		if err := cni.DelNetworkList(ctx, list, &pods[i]); err != nil {
			return failure(fmt.Errorf("DEL %s: %w", pods[i].ContainerID, err))
		}
		out.DelNs = append(out.DelNs, time.Since(start).Nanoseconds())
	}
	return out
}

// parseArgs splits CNI_ARGS ("K=V;K=V") into libcni's pairs.
func parseArgs(s string) [][2]string {
	var pairs [][2]string
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		pairs = append(pairs, [2]string{k, v})
	}
	return pairs
}

func done(err error) outcome {
	if err != nil {
		return failure(err)
	}
	return outcome{OK: true}
}

// failure keeps the plugin's CNI error code: libcni wraps the
// *types.Error it decoded from the plugin's stdout in its own message.
func failure(err error) outcome {
	out := outcome{OK: false, Error: err.Error()}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		out.Code, out.Msg, out.Details = cniErr.Code, cniErr.Msg, cniErr.Details
	}
	return out
}

func finish(out outcome) {
	line, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(line))
	if !out.OK {
		os.Exit(1)
	}
	os.Exit(0)
}
