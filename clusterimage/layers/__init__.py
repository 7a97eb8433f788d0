"""Layers and tar archives: reading them safely, shared by the builder, the transports that
hold tars (oci-archive, docker-archive) and the runtime.

- :mod:`~clusterimage.layers.tarsafe`: tar headers bounded as Go's archive/tar bounds them.
"""
