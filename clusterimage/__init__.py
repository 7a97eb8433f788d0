"""clusterimage: build, store, ship and unpack OCI cluster images, daemonless."""

__version__ = "0.1.0"
