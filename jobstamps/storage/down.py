"""That a remote could not be reached, remembered for a while in the local cache.

A remote that could not be reached or did not answer in time is left alone by the invocations
that start in the next ``retry`` seconds (``JOBSTAMPS_REMOTE_RETRY``; each says so in one
line): a build of many targets waits for an unreachable server once, not once per target. The
mark is a memo in the local cache (see :meth:`Store.memo_path`), named by a digest of the URL
with its credentials.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobstamps.storage.remote_settings import Settings
    from jobstamps.store import Store

__all__ = ["Down"]


class Down:
    """Remembers, in a local cache, that a remote could not be reached, for ``retry`` seconds.

    The mark is named by a digest of the URL with its credentials (and the token): another
    user's or another password's way into the same server is not left alone for this one's
    failure, and no credential is written in clear.
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        from jobstamps.fingerprint import digest_bytes

        self.store = store
        self.retry_ns = int(settings.retry * 1e9)
        name = f"jobstamps-remote-down-2\0{settings.url}\0{settings.token or ''}"
        self.path = store.memo_path(digest_bytes(name.encode("utf-8", "surrogateescape")))

    def since(self) -> str:
        """Say why the remote is left alone now; ``""`` when it may be asked."""
        import time

        from jobstamps._fs import read_private

        words = (read_private(self.path) or b"").decode("utf-8", "replace").split(" ", 1)
        if len(words) != 2 or not words[0].isdigit():  # noqa: PLR2004 - the time, and why
            return ""
        failed = int(words[0])
        now = time.time_ns()
        if not now - self.retry_ns < failed <= now:
            return ""
        return (
            f"unreachable at {_clock(failed)} ({words[1]}), so not asked again before "
            f"{_clock(failed + self.retry_ns)} (JOBSTAMPS_REMOTE_RETRY sets how long)"
        )

    def mark(self, why: str) -> None:
        """Note now that the remote could not be reached, and why; never fails the caller."""
        import time

        from jobstamps._fs import atomic_write

        try:
            self.store.create()
            atomic_write(self.path, [f"{time.time_ns()} {why}".encode("utf-8", "replace")])
        except OSError:
            pass


def _clock(ns: int) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ns / 1e9))
