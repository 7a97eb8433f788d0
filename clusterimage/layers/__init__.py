"""Layers and tar archives, shared by the builder, the transports that hold tars (oci-archive,
docker-archive) and the runtime, so none of them imports another's code to read a layer.

- :mod:`~clusterimage.layers.tarsafe`: tar headers bounded as Go's archive/tar bounds them,
  decompression told by content (gzip with python-isal, zstd, bzip2, xz), random-access indexing,
  members' bodies read in large chunks and hashed.
- :mod:`~clusterimage.layers.writer`: the deterministic layer writer: tar, compression and both
  digests in one streaming pass.
- :mod:`~clusterimage.layers.listing`: a layer's tar headers as records, with file digests.
- :mod:`~clusterimage.layers.whiteout`: OCI whiteout and opaque names, applied to a tree.
- :mod:`~clusterimage.layers.extract`: applying a layer to a folder: OCI whiteouts and opaque
  folders, nothing written through a symbolic link or outside the folder, an unchanged file
  read but not written again.
"""
