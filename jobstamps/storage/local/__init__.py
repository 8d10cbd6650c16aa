"""The local cache directory, one job a module, beside the remote backends.

:class:`jobstamps.store.Store` is the front door: what a cache hit needs (where things are,
reading and checking an entry, counting the lookup) lives there, so that a hit imports one
module; it hands everything else to the modules here, each imported when first needed:

- :mod:`~jobstamps.storage.local.layout`: creating the directory and keeping it private,
  telling ours from anything else, listing finished files, clearing;
- :mod:`~jobstamps.storage.local.packs`: many entries stored in one file at once;
- :mod:`~jobstamps.storage.local.blobs`: captured output and stored files, by content;
- :mod:`~jobstamps.storage.local.memos`: small remembered facts (an executable's digest);
- :mod:`~jobstamps.storage.local.stats`: hit, miss and remote counts, and what is stored;
- :mod:`~jobstamps.storage.local.limits`: the size limit, and trimming the cache to it.

They only ever import downward (the file-system primitives, errors, fingerprints, each
other in the order above); they know the store by its type alone.

Importing this package imports nothing.
"""
