"""clusterimage's test suite (a package, so test modules import ``tests.fixtures``)."""
