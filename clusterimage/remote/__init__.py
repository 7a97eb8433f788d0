"""The registry client (OCI distribution API) behind the ``docker://`` transport.

- :mod:`~clusterimage.remote.credentials`: auth files, credential helpers, ``--creds``; what
  ``login`` saves and ``logout`` removes.
- :mod:`~clusterimage.remote.auth`: ``WWW-Authenticate`` challenges, scopes, the bearer-token
  cache shared by every client of the process.
- :mod:`~clusterimage.remote.tls`: TLS settings per registry (``--tls-verify``, ``--cert-dir``,
  certs.d).
- :mod:`~clusterimage.remote.client`: :class:`Registry`, one host: scheme, auth, retries, errors.
- :mod:`~clusterimage.remote.repository`: blobs (streamed, resumed reads), manifests, tags,
  cross-repository mounts.
- :mod:`~clusterimage.remote.upload`: blob uploads (whole, chunked, resumed).

Which failures are retried and how long to wait is :mod:`clusterimage.retry`; where blobs were
seen (for mounts) is :mod:`clusterimage.blobinfo`: both are the copy engine's too.
"""
