// Command demo-env runs the pieces of hack/demo.sh that are easier in Go than in a shell:
//
//	demo-env controlplane --kubeconfig PATH
//	    starts kube-apiserver and etcd (built by `make envtest-assets`) with the project's CRDs
//	    installed, writes an admin kubeconfig to PATH, prints "ready" and serves until SIGINT or
//	    SIGTERM, then stops both processes and removes their data.
//	demo-env freeport [N]
//	    prints N (default 1) free TCP ports on 127.0.0.1, one a line.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/routeopt/routeopt-operator/internal/testenv"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "controlplane":
		err = controlPlane(os.Args[2:])
	case "freeport":
		err = freePorts(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-env:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: demo-env controlplane --kubeconfig PATH | demo-env freeport [N]")
	os.Exit(2)
}

func controlPlane(args []string) error {
	fs := flag.NewFlagSet("controlplane", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "where to write the admin kubeconfig (required)")
	_ = fs.Parse(args)
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}

	// Catch signals before starting anything, so an early Ctrl-C still stops what was started.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)

	started := time.Now()
	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	stop := func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo-env: stopping the control plane:", err)
		}
	}
	if err := testenv.Kubeconfig(env, *kubeconfig); err != nil {
		stop()
		return err
	}
	fmt.Printf("control plane ready at %s in %s (kube-apiserver and etcd from %s)\n",
		cfg.Host, time.Since(started).Round(time.Millisecond), env.BinaryAssetsDirectory)
	fmt.Println("ready")

	s := <-sig
	fmt.Printf("received %s: stopping the control plane\n", s)
	stop()
	return nil
}

func freePorts(args []string) error {
	n := 1
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 {
			return fmt.Errorf("freeport: want a positive count, got %q", args[0])
		}
		n = v
	}
	// Hold every listener until all ports are chosen, so the N ports differ.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
