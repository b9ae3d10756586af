// Package metrics exports what the daemon does as Prometheus metrics: the
// requests on volume files (a fusefs.Observer), the snapshot store's
// requests (a snapstore.Store decorator), and, read at scrape time through
// the engine's query methods, the state of volumes and snapshots, the data
// dir's disk and the metadata store's size. Names follow Prometheus's
// conventions: a cowvol_ prefix, base units (_bytes, _seconds), _total on
// counters. The daemon serves them at /metrics on its control socket and,
// with --metrics-listen, on a plain HTTP listener.
package metrics
