// Command etcd is etcd's own main, built from the go.etcd.io/etcd/server/v3 module so the test
// control plane needs no prebuilt binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
