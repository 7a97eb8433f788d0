"""Layers and tar archives, shared by the builder, the transports that hold tars (oci-archive,
docker-archive) and the runtime, so none of them imports another's code to read a layer.

- :mod:`~clusterimage.layers.tarsafe`: tar headers bounded as Go's archive/tar bounds them,
  decompression told by content (gzip with python-isal, zstd, bzip2, xz), random-access indexing.
- :mod:`~clusterimage.layers.extract`: applying a layer to a folder: OCI whiteouts and opaque
  folders, nothing written through a symbolic link or outside the folder, an unchanged file
  read but not written again.

Writing deterministic layers is still the builder's (``clusterimage.build.layer``): it works on
the builder's file tree model.
"""
