"""Where results are kept: the local cache directory and remote caches shared by a team.

The local directory (:mod:`jobstamps.store`, and :mod:`jobstamps.storage.local` beside the
remote backends) is always there and always looked at first. A
remote cache is optional, configured by ``JOBSTAMPS_REMOTE`` (or ``--remote``), and reached
through one narrow interface, :class:`jobstamps.storage.backend.Backend`: entries by key and
blobs by digest, both opaque bytes. One module per kind of server implements it:

- :mod:`jobstamps.storage.http`: any server that answers GET, PUT and HEAD (nginx with WebDAV,
  bazel-remote, the layouts of ccache's HTTP storage);
- :mod:`jobstamps.storage.redis`: Redis (redis-py, the ``redis`` extra).

Around a backend, :mod:`jobstamps.storage.remote` picks the backend for the URL's scheme and
applies the failure policy: every failure is a miss and one warning, and a remote that keeps
failing is left alone for the rest of the invocation (one that could not be reached, for a
while longer: :mod:`jobstamps.storage.down`). :mod:`jobstamps.storage.remote_settings` reads
the settings from the URL and the environment and keeps their credentials out of messages.
:mod:`jobstamps.storage.records` is what goes on the wire: results as plain data, checked
against the key they were asked for and, with a shared key, signed.

:mod:`jobstamps.storage.layered` moves results between the two: records looked up, their
blobs downloaded into the local cache, stored results made into records and uploaded. Locks,
statistics and size limits stay local. It decides nothing: which jobs are looked up and what
is kept is :mod:`jobstamps.sharing`'s, above the engine, with remote keys (the same on every
machine) from :mod:`jobstamps.portable`. Nothing here imports the engine or anything above it.

A new kind of server (S3, say) is one module with a :class:`~jobstamps.storage.backend.Backend`
subclass, and one line in :data:`jobstamps.storage.remote_settings.BACKENDS`.

Importing this package imports nothing: a local cache hit must stay cheap.
"""
