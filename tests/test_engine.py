"""The engine: when a stored result may be replayed, and when it must not even be stored."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import support
from jobstamps import fingerprint
from jobstamps.engine import HASH, MTIME, Engine, Job, ReplayError
from jobstamps.store import Store

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

KEY = "e1" + "0" * 38


class Harness:
    """An engine over a fresh store, a counter of runs, and the explanations it gave."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store(str(root / "cache"))
        self.said: list[str] = []
        self.engine = Engine(self.store, self.said.append)
        self.counter = root / "runs"

    def runs(self) -> int:
        return support.runs(self.counter)

    def compute(
        self, value: object = "result", before: Callable[[], object] | None = None
    ) -> Callable[[], tuple[Any, dict[str, Any] | None, Sequence[tuple[str, int]]]]:
        def run() -> tuple[Any, dict[str, Any] | None, Sequence[tuple[str, int]]]:
            support.bump(self.counter)
            if before is not None:
                before()
            return value, {"value": value}, ()

        return run

    def run(
        self,
        job: Job,
        value: object = "result",
        before: Callable[[], object] | None = None,
        force: bool = False,
    ) -> Any:
        return self.engine.run(job, self.compute(value, before), replay, force=force)

    def entry(self, key: str = KEY) -> dict[str, Any]:
        found, why = self.store.read(key)
        assert found is not None, why
        return found


def replay(payload: dict[str, Any]) -> Any:
    return payload["value"]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def dep(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text("input\n")
    return path


# -- the basic protocol --------------------------------------------------------------------


def test_a_job_runs_once_then_replays(h: Harness) -> None:
    job = Job(KEY, about="the job")
    assert h.run(job, "first") == "first"
    assert h.run(job, "second") == "first"
    assert h.runs() == 1
    assert h.said[0] == "running the job: nothing is stored yet (the cache directory is new)"
    assert h.said[1] == "stored the result of the job"
    assert h.said[2].startswith("replayed the job: nothing changed since it ran at ")


def test_checking_creates_nothing(h: Harness) -> None:
    verdict = h.engine.check(Job(KEY))
    assert not verdict.fresh
    assert verdict.trigger == h.store.entry_path(KEY)
    assert not os.path.exists(h.store.root)


def test_a_job_names_itself_by_its_key_by_default() -> None:
    assert Job(KEY).about == KEY[:12]


def test_a_stored_entry_records_what_was_checked(h: Harness, dep: Path) -> None:
    job = Job(KEY, [str(dep)], method=HASH, about="about")
    h.run(job)
    stored = h.entry()
    assert stored["about"] == "about"
    assert stored["method"] == HASH
    assert [path for path, _ in stored["deps"]] == [str(dep)]
    st = os.stat(dep)
    assert tuple(stored["deps"][0][1][:3]) == (st.st_mtime_ns, st.st_ctime_ns, st.st_size)
    assert stored["payload"] == {"value": "result"}


def test_force_runs_a_fresh_job_and_stores_the_new_result(h: Harness) -> None:
    job = Job(KEY, about="job")
    h.run(job, "old")
    assert h.run(job, "new", force=True) == "new"
    assert h.runs() == 2
    assert "running job: a re-run was forced" in h.said
    assert h.run(job, "ignored") == "new"


def test_lookups_are_counted(h: Harness) -> None:
    job = Job(KEY)
    for _ in range(3):
        h.run(job)
    stats = h.store.stats()
    assert (stats["hits"], stats["misses"]) == (2, 1)


def test_an_entry_made_with_other_settings_is_not_used(h: Harness, dep: Path) -> None:
    h.run(Job(KEY, [str(dep)], method=MTIME))
    verdict = h.engine.check(Job(KEY, [str(dep)], method=HASH))
    assert verdict.trigger == h.store.entry_path(KEY)
    assert verdict.why == "the stored entry was made with other settings"
    verdict = h.engine.check(Job(KEY, [], method=MTIME))
    assert verdict.why == "the stored entry was made with other settings"


# -- dependencies --------------------------------------------------------------------------


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_changed_dependency_reruns(h: Harness, dep: Path, method: str) -> None:
    job = Job(KEY, [str(dep)], method=method)
    h.run(job, 1)
    dep.write_text("changed\n")
    verdict = h.engine.check(job)
    assert verdict.trigger == str(dep)
    assert verdict.why.startswith(f"dependency {dep} changed: ")
    assert h.run(job, 2) == 2
    assert h.run(job, 3) == 2
    assert h.runs() == 2


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_deleted_dependency_reruns(h: Harness, dep: Path, method: str) -> None:
    job = Job(KEY, [str(dep)], method=method)
    h.run(job)
    dep.unlink()
    verdict = h.engine.check(job)
    assert verdict.trigger == str(dep)
    assert verdict.why == f"dependency {dep} changed: it is missing"


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_missing_dependency_never_hits(h: Harness, tmp_path: Path, method: str) -> None:
    absent = tmp_path / "absent"
    job = Job(KEY, [str(absent)], method=method)
    for _ in range(3):
        h.run(job)
        assert not h.engine.check(job).fresh
    assert h.runs() == 3
    absent.write_text("there now\n")
    h.run(job)
    h.run(job)
    assert h.runs() == 4


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_dependency_the_job_edits_is_not_stored(h: Harness, dep: Path, method: str) -> None:
    job = Job(KEY, [str(dep)], method=method)
    h.run(job, before=lambda: dep.write_text("edited by the job\n"))
    assert any("changed while the job ran" in line for line in h.said)
    assert h.store.read(KEY)[0] is None
    h.run(job)
    assert h.runs() == 2
    h.run(job)
    assert h.runs() == 2


def test_a_dependency_another_thread_edits_mid_run_is_not_stored(h: Harness, dep: Path) -> None:
    started, edited = threading.Event(), threading.Event()

    def editor() -> None:
        started.wait(30)
        dep.write_text("edited meanwhile\n")
        edited.set()

    def job_body() -> None:
        started.set()
        assert edited.wait(30)

    thread = threading.Thread(target=editor)
    thread.start()
    job = Job(KEY, [str(dep)])
    h.run(job, before=job_body)
    thread.join()
    assert h.engine.check(job).trigger == h.store.entry_path(KEY)
    h.run(job)
    assert h.runs() == 2


def test_an_edit_that_keeps_size_and_mtime_during_the_run_is_seen(
    h: Harness, dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)  # the stat alone decides: the hardest case
    support.backdate(dep, 3600)
    before = os.stat(dep)

    def sneaky_edit() -> None:
        dep.write_text("INPUT\n")
        os.utime(dep, ns=(before.st_atime_ns, before.st_mtime_ns))

    job = Job(KEY, [str(dep)])
    h.run(job, before=sneaky_edit)
    assert any("change time changed" in line for line in h.said)
    assert h.store.read(KEY)[0] is None


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_touch_during_the_run_is_not_stored_in_either_method(
    h: Harness, dep: Path, method: str
) -> None:
    # What the job read cannot be told from the stat of what is there now: play safe.
    job = Job(KEY, [str(dep)], method=method)
    h.run(job, before=lambda: support.backdate(dep, 10))
    assert any("changed while the job ran" in line for line in h.said)
    assert h.store.read(KEY)[0] is None
    h.run(job)
    h.run(job)
    assert h.runs() == 2


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_dependency_rewritten_and_restored_during_the_run_is_not_stored(
    h: Harness, dep: Path, method: str
) -> None:
    # X -> Y -> X while the job runs, even with the old modification time put back: the job
    # may have read Y, so its result must not be replayed for X.
    before = os.stat(dep)

    def there_and_back() -> None:
        dep.write_text("other\n")
        dep.write_text("input\n")
        os.utime(dep, ns=(before.st_atime_ns, before.st_mtime_ns))

    job = Job(KEY, [str(dep)], method=method)
    h.run(job, before=there_and_back)
    assert any("changed while the job ran" in line for line in h.said)
    assert h.store.read(KEY)[0] is None


def test_a_touched_dependency_in_hash_mode_hits_and_is_refreshed(
    h: Harness, dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    job = Job(KEY, [str(dep)], method=HASH)
    h.run(job)
    touched = support.backdate(dep, 100)
    assert h.run(job, "other") == "result"
    assert h.entry()["deps"][0][1][0] == touched
    assert h.runs() == 1


def test_a_racy_dependency_is_recorded_with_its_digest_then_settles(
    h: Harness, dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint, "RACY_WINDOW_NS", 3600 * 10**9)  # racy however slow the test
    job = Job(KEY, [str(dep)])
    h.run(job)
    recorded = h.entry()["deps"][0][1]
    assert recorded[7] is True
    assert recorded[6] != ""
    h.run(job)  # still racy: nothing to refresh, still a hit
    assert h.entry()["deps"][0][1] == recorded
    support.settle(monkeypatch)
    h.run(job)
    assert h.entry()["deps"][0][1][7] is False
    assert h.runs() == 1


def test_a_same_tick_edit_of_a_racy_dependency_reruns(h: Harness, dep: Path) -> None:
    job = Job(KEY, [str(dep)])
    h.run(job)
    recorded = h.entry()["deps"][0][1]
    dep.write_text("INPUT\n")  # same size
    os.utime(dep, ns=(recorded[0], recorded[0]))
    assert h.engine.check(job).trigger == str(dep)
    h.run(job)
    assert h.runs() == 2


def test_a_result_adopted_for_other_contents_of_a_racy_dependency_is_never_replayed(
    h: Harness, dep: Path
) -> None:
    # Adopting reads no contents again: the stored racy fingerprint makes every replay do so.
    recorded = h.engine.begin(Job(KEY, [str(dep)])).deps[0]
    assert recorded is not None
    assert recorded[7] is True
    same_tick = (*recorded[:6], "0" * 40, True)  # the contents the result was made for
    job = Job(KEY, [str(dep)])
    assert h.engine.adopt(job, [same_tick], {"value": "made elsewhere"}) == ""
    assert not h.engine.check(job).fresh
    assert h.run(job, "made here") == "made here"
    assert h.runs() == 1


def test_a_result_adopted_after_a_dependency_changed_is_not_stored(h: Harness, dep: Path) -> None:
    job = Job(KEY, [str(dep)])
    recorded = h.engine.begin(job).deps
    dep.write_text("a longer input\n")
    assert h.engine.adopt(job, recorded, {"value": "made elsewhere"}).startswith(
        f"dependency {dep} changed"
    )
    assert h.store.read(KEY)[0] is None


# -- outputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_an_output_the_job_did_not_create_is_stored_and_never_replayed(
    h: Harness, tmp_path: Path, method: str
) -> None:
    out = tmp_path / "out"
    job = Job(KEY, outputs=[str(out)], method=method)
    h.run(job)
    assert f"declared output {out} was not created; it runs again next time" in h.said
    assert h.entry()["outputs"][0][:2] == [str(out), None]
    verdict = h.engine.check(job)
    assert verdict.trigger == str(out)  # what out_of_date() reports, as the original did
    assert verdict.why == f"output {out} is missing; the stored run did not create it"
    h.run(job)
    assert h.runs() == 2
    out.write_text("made by someone else")
    assert h.engine.check(job).why == f"output {out} exists now; the stored run did not create it"
    h.run(job)
    assert h.runs() == 3


def test_an_output_restore_does_not_stand_in_for_one_never_created(
    h: Harness, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = Job(KEY, outputs=[str(out)], restore_outputs=True)
    h.run(job)
    assert h.engine.check(job).trigger == str(out)


def test_an_entry_for_other_outputs_is_not_used(h: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out"
    h.run(Job(KEY, outputs=[str(out)], method=MTIME), before=lambda: out.write_text("x"))
    verdict = h.engine.check(Job(KEY, outputs=[str(tmp_path / "other")]))
    assert verdict.why == "the stored entry was made with other settings"


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_missing_output_reruns(h: Harness, tmp_path: Path, method: str) -> None:
    out = tmp_path / "out"
    job = Job(KEY, outputs=[str(out)], method=method)
    h.run(job, before=lambda: out.write_text("made"))
    h.run(job)
    assert h.runs() == 1
    out.unlink()
    verdict = h.engine.check(job)
    assert verdict.trigger == str(out)
    assert verdict.why == f"output {out} is missing"
    h.run(job, before=lambda: out.write_text("made"))
    assert h.runs() == 2


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_changed_output_reruns(h: Harness, tmp_path: Path, method: str) -> None:
    out = tmp_path / "out"
    job = Job(KEY, outputs=[str(out)], method=method)
    h.run(job, before=lambda: out.write_text("made"))
    out.write_text("MADE")
    verdict = h.engine.check(job)
    assert verdict.trigger == str(out)
    assert verdict.why.startswith(f"output {out} changed since it was made: ")


def test_outputs_are_checked_before_dependencies(h: Harness, dep: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = Job(KEY, [str(dep)], [str(out)])
    h.run(job, before=lambda: out.write_text("made"))
    out.unlink()
    dep.write_text("changed\n")
    assert h.engine.check(job).trigger == str(out)


def test_a_deleted_output_is_restored_without_running(h: Harness, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.bin"
    data = bytes(range(256)) * 50

    def make() -> None:
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(data)
        out.chmod(0o751)

    job = Job(KEY, outputs=[str(out)], restore_outputs=True)
    h.run(job, before=make)
    assert h.store.stats()["blobs"] == 1
    out.unlink()
    out.parent.rmdir()
    assert h.engine.check(job).fresh
    assert h.run(job, "other") == "result"
    assert h.runs() == 1
    assert out.read_bytes() == data
    assert os.stat(out).st_mode & 0o7777 == 0o751
    assert f"restored output {out} from the cache" in h.said
    # The restored file is now what the entry expects.
    verdict = h.engine.check(job)
    assert verdict.fresh
    assert not verdict.restore


def test_restoring_is_off_by_default(h: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = Job(KEY, outputs=[str(out)])
    h.run(job, before=lambda: out.write_text("made"))
    assert h.store.stats()["blobs"] == 0
    out.unlink()
    assert h.engine.check(job).trigger == str(out)
    # Asking for restores now cannot help: nothing was stored.
    assert h.engine.check(Job(KEY, outputs=[str(out)], restore_outputs=True)).trigger == str(out)


def test_a_changed_output_is_not_restored_over(h: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = Job(KEY, outputs=[str(out)], restore_outputs=True)
    h.run(job, before=lambda: out.write_text("made"))
    out.write_text("edited by hand")
    h.run(job, before=lambda: out.write_text("made again"))
    assert h.runs() == 2
    assert out.read_text() == "made again"


def test_a_missing_blob_means_running_again(h: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = Job(KEY, outputs=[str(out)], restore_outputs=True)
    h.run(job, before=lambda: out.write_text("made"))
    (blob,) = h.entry()["blobs"]
    os.unlink(h.store.blob_path(blob[0]))
    verdict = h.engine.check(job)
    assert verdict.trigger == h.store.entry_path(KEY)
    assert verdict.why == "stored data that the entry needs is missing"


def test_a_damaged_blob_is_not_restored(h: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = Job(KEY, outputs=[str(out)], restore_outputs=True)
    h.run(job, before=lambda: out.write_bytes(b"the right bytes"))
    (blob,) = h.entry()["blobs"]
    Path(h.store.blob_path(blob[0])).write_bytes(b"THE RIGHT BYTES")
    out.unlink()
    h.run(job, before=lambda: out.write_bytes(b"the right bytes"))
    assert out.read_bytes() == b"the right bytes"


def test_an_output_directory_is_checked_but_not_stored(h: Harness, tmp_path: Path) -> None:
    out = tmp_path / "outdir"

    def make() -> None:
        out.mkdir(exist_ok=True)
        (out / "a").write_text("")

    job = Job(KEY, outputs=[str(out)], restore_outputs=True, method=HASH)
    h.run(job, before=make)
    assert h.engine.check(job).fresh
    (out / "b").write_text("")
    assert h.engine.check(job).trigger == str(out)


# -- results that cannot be stored or replayed ---------------------------------------------


def test_a_result_without_payload_is_returned_and_not_stored(h: Harness) -> None:
    def compute() -> tuple[Any, dict[str, Any] | None, Sequence[tuple[str, int]]]:
        support.bump(h.counter)
        return "unstorable", None, ()

    job = Job(KEY)
    assert h.engine.run(job, compute, replay) == "unstorable"
    assert h.engine.run(job, compute, replay) == "unstorable"
    assert h.runs() == 2
    assert h.store.stats()["entries"] == 0


def test_a_result_that_cannot_be_replayed_runs_again(h: Harness) -> None:
    def broken(payload: dict[str, Any]) -> Any:
        message = "cannot unpickle"
        raise ReplayError(message)

    job = Job(KEY, about="job")
    h.run(job, "first")
    assert h.engine.run(job, h.compute("second"), broken) == "second"
    assert h.runs() == 2
    assert "running job: the stored result cannot be replayed (cannot unpickle)" in h.said
    assert h.run(job) == "second"


# -- faults of the cache itself ------------------------------------------------------------


@pytest.mark.parametrize("blocked", ["v1", "v1/e", "v1/e/e1"])
def test_a_cache_that_cannot_be_written_still_returns_results(h: Harness, blocked: str) -> None:
    h.store.create()
    path = Path(h.store.root, blocked)
    if path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a file where a directory should be (as good as a full disk)")
    job = Job(KEY)
    assert h.run(job, "first") == "first"
    assert h.run(job, "second") == "second"
    assert h.runs() == 2
    assert any(line.startswith("not stored: the cache could not be written") for line in h.said)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:20],
        lambda data: data[:-1] + bytes([data[-1] ^ 4]),
        lambda _: b"garbage",
    ],
    ids=["truncated", "flipped", "garbage"],
)
def test_a_damaged_entry_runs_again_and_is_rewritten(
    h: Harness, damage: Callable[[bytes], bytes]
) -> None:
    job = Job(KEY, about="job")
    h.run(job, "first")
    path = Path(h.store.entry_path(KEY))
    path.write_bytes(damage(path.read_bytes()))
    assert h.run(job, "second") == "second"
    assert "running job: the stored entry is damaged or was not written by this cache" in h.said
    assert h.run(job, "third") == "second"
    assert h.runs() == 2


def test_another_jobs_entry_in_its_place_runs_again(h: Harness) -> None:
    other = "e1" + "f" * 38
    h.run(Job(other), "other job")
    os.replace(h.store.entry_path(other), h.store.entry_path(KEY))
    assert h.run(Job(KEY, about="job"), "this job") == "this job"
    assert "running job: the stored entry belongs to another key" in h.said


def test_a_size_limit_evicts_old_entries_after_storing(h: Harness) -> None:
    first, second = "e1" + "1" * 38, "e1" + "2" * 38
    h.run(Job(first), "x" * 5000)
    support.backdate(h.store.entry_path(first), 100)
    h.store.max_size = 6000
    h.run(Job(second), "y" * 5000)
    assert h.store.read(first)[0] is None
    assert h.store.read(second)[0] is not None


# -- one run for identical concurrent jobs -------------------------------------------------


def test_identical_jobs_in_two_threads_run_once(h: Harness) -> None:
    started, release = threading.Event(), threading.Event()
    results: list[Any] = []

    def slow_body() -> None:
        started.set()
        assert release.wait(30)

    def second() -> None:
        results.append(h.run(Job(KEY), "second"))

    h.store.create()
    first = threading.Thread(target=lambda: results.append(h.run(Job(KEY), "first", slow_body)))
    first.start()
    assert started.wait(30)
    waiter = threading.Thread(target=second)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "the identical job should wait for the running one"
    release.set()
    first.join(30)
    waiter.join(30)
    assert results == ["first", "first"]
    assert h.runs() == 1


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_an_entry_with_fingerprints_of_an_earlier_shape_is_never_fresh(
    h: Harness, dep: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    job = Job(KEY, [str(dep)], method=method)
    h.run(job)
    entry = h.entry()
    st = os.stat(dep)
    digest = fingerprint.digest_file(str(dep))
    old = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, digest, False)
    h.store.write(KEY, {**entry, "deps": [[str(dep), old]]})
    verdict = h.engine.check(job)
    assert verdict.trigger == str(dep)
    assert verdict.why.endswith("it was recorded by another version of jobstamps")
