"""Per-file mode: batches, each file's result divided out of them, bisection, replay in order."""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobstamps import perfile
from jobstamps.storage.local.packs import PACK_MIN
from jobstamps.store import Store
from support import TIMEOUT, cache_entries, cache_packs, read_until, stand_in_linter

BIN = Path(sys.executable).parent

# A stand-in linter that takes many files, as real ones do. It logs each run (the files it was
# given), then judges each file by markers in its contents: "named" prints a message with
# continuation lines, "warn" prints a warning that fails nothing, "silent" fails without a
# word, "segv" crashes, two files holding "pair" fail together (silently) though each passes
# alone. With --summary it ends with a summary. It takes FAKE_SLEEP seconds per run, if set.
FAKE = r"""
import os, signal, sys, time
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
summary = "--summary" in sys.argv
files = [arg for arg in sys.argv[1:] if arg != "--summary"]
with open(os.environ["FAKE_RUNS"], "ab") as log:
    log.write(b"\0".join(os.fsencode(name) for name in files) + b"\n")
out = sys.stdout.buffer
status, problems = 0, 0
texts = {name: open(name, "rb").read() for name in files}
for name in files:
    text = texts[name]
    if b"segv" in text:
        out.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    if b"named" in text:
        out.write(os.fsencode(name) + b":1:1: E1 named problem\n    named\n    ^\n")
        status, problems = 1, problems + 1
    if b"warn" in text:
        out.write(os.fsencode(name) + b":1:1: W1 warning only\n")
    if b"silent" in text:
        status, problems = 1, problems + 1
if sum(b"pair" in text for text in texts.values()) > 1:
    status = 1
if summary and problems:
    out.write(b"Found %d errors.\n" % problems)
out.flush()
sys.exit(status)
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Return the stand-in linter's command; work in a fresh directory."""
    return stand_in_linter(tmp_path, monkeypatch, FAKE, "FAKE_RUNS")


def runs(tmp_path: Path) -> list[list[bytes]]:
    """Return, and forget, the runs of the stand-in linter: the files each was given."""
    log = tmp_path / "fake_runs"
    if not log.exists():
        return []
    lines = log.read_bytes().splitlines()
    log.unlink()
    return [line.split(b"\0") for line in lines]


def ran_files(tmp_path: Path) -> list[bytes]:
    return sorted(name for run in runs(tmp_path) for name in run)


def per_file(*argv: str | bytes, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``jobstamp --per-file ARGV...`` with both streams into one pipe, as pre-commit does."""
    return subprocess.run(
        [sys.executable, "-m", "jobstamps", "--per-file", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        check=False,
    )


def write(files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        Path(name).write_text(text)
    return list(files)


def named(name: str) -> bytes:
    return f"{name}:1:1: E1 named problem\n    named\n    ^\n".encode()


# -- batches and bisection ------------------------------------------------------------------------


def test_stale_files_run_in_one_batch_per_job_and_replay_without_a_run(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({f"f{i}.py": "named\n" if i in {2, 7} else "fine\n" for i in range(10)})
    first = per_file("--jobs", "2", "--", *fake, "--", *names)
    assert first.returncode == 1
    assert first.stdout == named("f2.py") + named("f7.py")
    # Two batches of five; each failed and named one file: the four silent files of each
    # batch cannot be trusted from that run and run again, together.
    assert sorted(len(run) for run in runs(tmp_path)) == [4, 4, 5, 5]
    second = per_file("--jobs", "2", "--", *fake, "--", *names)
    assert (second.returncode, second.stdout) == (1, first.stdout)
    assert runs(tmp_path) == []


def test_one_edited_file_runs_alone_and_with_nothing_else(fake: list[str], tmp_path: Path) -> None:
    names = write({f"f{i}.py": "fine\n" for i in range(6)})
    assert per_file("--", *fake, "--", *names).returncode == 0
    runs(tmp_path)
    Path("f3.py").write_text("named\n")
    edited = per_file("--", *fake, "--", *names)
    assert (edited.returncode, edited.stdout) == (1, named("f3.py"))
    assert runs(tmp_path) == [[b"f3.py"]]


def test_a_configuration_change_reruns_every_file_in_batches(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({f"f{i}.py": "fine\n" for i in range(40)})
    argv = ["--jobs", "2", "--dependencies", "lint.cfg", "--", *fake, "--", *names]
    assert per_file(*argv).returncode == 0
    assert [len(run) for run in runs(tmp_path)] == [20, 20]
    assert per_file(*argv).returncode == 0
    assert runs(tmp_path) == []
    Path("lint.cfg").write_text("[lint]\n")
    assert per_file(*argv).returncode == 0
    assert [len(run) for run in runs(tmp_path)] == [20, 20]


def test_the_results_of_a_large_run_are_stored_in_one_file_and_replayed(
    fake: list[str], tmp_path: Path, isolated_cache: Path
) -> None:
    names = write({f"f{i:02}.py": "named\n" if i == 5 else "fine\n" for i in range(PACK_MIN + 4)})
    argv = ["--jobs", "1", "--", *fake, "--", *names]
    first = per_file(*argv)
    assert (first.returncode, first.stdout) == (1, named("f05.py"))
    assert [len(run) for run in runs(tmp_path)] == [PACK_MIN + 4, PACK_MIN + 3]
    # The files the second run passed are one pack; the failing file's result is a file.
    assert len(cache_packs(isolated_cache)) == 1
    assert len(cache_entries(isolated_cache)) == 1
    second = per_file(*argv)
    assert (second.returncode, second.stdout) == (1, first.stdout)
    assert runs(tmp_path) == []
    Path("f09.py").write_text("named\n")
    third = per_file(*argv)
    assert (third.returncode, third.stdout) == (1, named("f05.py") + named("f09.py"))
    assert runs(tmp_path) == [[b"f09.py"]]


@pytest.mark.parametrize("damage", ["flipped", "truncated", "directory"])
def test_a_damaged_pack_runs_its_files_again(
    fake: list[str], tmp_path: Path, isolated_cache: Path, damage: str
) -> None:
    names = write({f"f{i:02}.py": "named\n" if i == 3 else "fine\n" for i in range(PACK_MIN + 1)})
    argv = ["--jobs", "1", "--", *fake, "--", *names]
    first = per_file(*argv)
    runs(tmp_path)
    (pack,) = cache_packs(isolated_cache)
    data = Path(pack).read_bytes()
    if damage == "flipped":
        Path(pack).write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncated":
        Path(pack).write_bytes(data[:-1])
    else:
        os.unlink(pack)
        os.mkdir(pack)
    again = per_file(*argv)
    assert (again.returncode, again.stdout) == (1, first.stdout)
    # Every file of the pack ran again; the failing one has a file of its own.
    assert ran_files(tmp_path) == sorted(name.encode() for name in names if name != "f03.py")
    last = per_file(*argv)
    assert (last.returncode, last.stdout) == (1, first.stdout)
    assert runs(tmp_path) == []


def test_a_link_in_place_of_the_packs_directory_leaves_its_target_alone(
    fake: list[str], tmp_path: Path, isolated_cache: Path
) -> None:
    names = write({f"f{i:02}.py": "named\n" if i == 3 else "fine\n" for i in range(PACK_MIN + 2)})
    argv = ["--jobs", "1", "--", *fake, "--", *names]
    assert per_file("--", *fake, "--", names[0]).returncode == 0  # makes the cache
    victim = tmp_path / "victim"
    victim.mkdir()
    kept = sorted(victim / f"note{number:02}.txt" for number in range(12))
    for path in kept:
        path.write_bytes(b"precious")
    os.symlink(victim, isolated_cache / "v1" / "e" / "packs")
    for _ in range(2):
        again = per_file(*argv)
        assert again.returncode == 1
        assert again.stdout.startswith(named("f03.py"))
        assert sorted(victim.iterdir()) == kept
        assert all(path.read_bytes() == b"precious" for path in kept)
        assert b"results were not stored" in again.stdout
        assert b"Traceback" not in again.stdout


def test_two_large_runs_at_once_store_results_both_replay(
    fake: list[str], tmp_path: Path, isolated_cache: Path
) -> None:
    names = write({f"f{i:03}.py": "named\n" if i % 7 == 0 else "fine\n" for i in range(120)})
    argv = [sys.executable, "-m", "jobstamps", "--per-file", "--jobs", "2", "--", *fake, "--"]
    expected = b"".join(named(name) for i, name in enumerate(names) if i % 7 == 0)
    for _ in range(3):  # each round with an empty cache, both at once
        shutil.rmtree(isolated_cache, ignore_errors=True)
        both = [
            subprocess.Popen([*argv, *names], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(2)
        ]
        for process in both:
            stdout, _ = process.communicate(timeout=120)
            assert (process.returncode, stdout) == (1, expected)
        runs(tmp_path)
        again = per_file("--jobs", "2", "--", *fake, "--", *names)
        assert (again.returncode, again.stdout) == (1, expected)
        assert runs(tmp_path) == []


def test_a_failure_that_names_no_file_is_bisected_to_the_failing_file(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({f"f{i}.py": "silent\n" if i == 5 else "fine\n" for i in range(8)})
    result = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (result.returncode, result.stdout) == (1, b"")
    assert [len(run) for run in runs(tmp_path)] == [8, 4, 4, 2, 2, 1, 1]
    # Each file's own result was stored: replayed one at a time, none runs.
    for name in names:
        alone = per_file("--", *fake, "--", name)
        assert alone.returncode == (1 if name == "f5.py" else 0), name
    assert runs(tmp_path) == []


def test_a_linter_that_prints_only_a_summary_is_bisected(fake: list[str], tmp_path: Path) -> None:
    names = write({"a.py": "fine\n", "b.py": "silent\n", "c.py": "fine\n", "d.py": "fine\n"})
    first = per_file("--jobs", "1", "--", *fake, "--summary", "--", *names)
    assert first.returncode == 1
    # The summary of each run that could not be divided is not stored; b.py's run alone is
    # all b.py's, summary included.
    assert first.stdout == b"Found 1 errors.\n"
    again = per_file("--jobs", "1", "--", *fake, "--summary", "--", *names)
    assert (again.returncode, again.stdout) == (1, b"Found 1 errors.\n")
    assert runs(tmp_path) == [
        [b"a.py", b"b.py", b"c.py", b"d.py"],
        [b"a.py", b"b.py"],
        [b"c.py", b"d.py"],
        [b"a.py"],
        [b"b.py"],
    ]


def test_a_summary_is_replayed_where_it_was_only_while_its_run_replays_whole(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "named\n", "b.py": "fine\n", "c.py": "named\n"})
    argv = ["--jobs", "1", "--", *fake, "--summary", "--", *names]
    first = per_file(*argv)
    assert first.returncode == 1
    assert first.stdout == named("a.py") + named("c.py") + b"Found 2 errors.\n"
    # b.py printed nothing in a run that failed: it ran again, alone, and passed.
    assert runs(tmp_path) == [[b"a.py", b"b.py", b"c.py"], [b"b.py"]]
    second = per_file(*argv)
    assert (second.returncode, second.stdout) == (1, first.stdout)
    assert runs(tmp_path) == []
    # a.py and c.py took their results from that run: b.py is not part of its summary.
    Path("b.py").write_text("fine\n# edited\n")
    third = per_file(*argv)
    assert (third.returncode, third.stdout) == (1, first.stdout)
    assert runs(tmp_path) == [[b"b.py"]]
    # Without c.py's result from that run, its summary is stale: c.py's new run has its own.
    Path("c.py").write_text("named\n# edited\n")
    fourth = per_file(*argv)
    assert fourth.stdout == named("a.py") + named("c.py") + b"Found 1 errors.\n"
    assert runs(tmp_path) == [[b"c.py"]]


def test_failures_shared_with_a_file_that_then_failed_alone_are_checked_again(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "named\n", "b.py": "silent\n", "c.py": "warn\n", "d.py": "named\n"})
    first = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert first.returncode == 1
    assert runs(tmp_path) == [[b"a.py", b"b.py", b"c.py", b"d.py"], [b"b.py"]]
    Path("b.py").write_text("fine\n")
    Path("a.py").write_text("fine\n")
    Path("d.py").write_text("fine\n")
    # c.py failed with a run that b.py (failing silently) was in: it is checked again.
    second = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (second.returncode, second.stdout) == (0, b"c.py:1:1: W1 warning only\n")
    assert sorted(ran_files(tmp_path)) == [b"a.py", b"b.py", b"c.py", b"d.py"]


def test_continuation_lines_stay_with_their_file_in_replay_order(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "named\n", "b.py": "named\n", "c.py": "named\n"})
    assert per_file("--jobs", "1", "--", *fake, "--", *names).stdout == b"".join(
        named(name) for name in names
    )
    replayed = per_file("--", *fake, "--", "c.py", "b.py", "a.py")
    expected = named("c.py") + named("b.py") + named("a.py")
    assert (replayed.returncode, replayed.stdout) == (1, expected)
    assert runs(tmp_path) == [[b"a.py", b"b.py", b"c.py"]]


def test_failures_shared_with_files_not_replayed_are_checked_again_once(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "named\n", "b.py": "named\n", "c.py": "named\n"})
    per_file("--jobs", "1", "--", *fake, "--", *names)
    runs(tmp_path)
    for _ in range(2):
        replayed = per_file("--jobs", "1", "--", *fake, "--", "c.py", "a.py")
        assert (replayed.returncode, replayed.stdout) == (1, named("c.py") + named("a.py"))
    assert runs(tmp_path) == [[b"c.py", b"a.py"]]


def test_a_file_with_warnings_only_passes_once_the_file_it_failed_with_is_fixed(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.yaml": "warn\n", "b.yaml": "named\n"})
    first = per_file("--jobs", "1", "--", *fake, "--", *names)
    warning = b"a.yaml:1:1: W1 warning only\n"
    assert (first.returncode, first.stdout) == (1, warning + named("b.yaml"))
    Path("b.yaml").write_text("fine\n")
    fixed = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (fixed.returncode, fixed.stdout) == (0, warning)
    assert runs(tmp_path) == [[b"a.yaml", b"b.yaml"], [b"b.yaml"], [b"a.yaml"]]
    again = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (again.returncode, again.stdout) == (0, warning)
    assert runs(tmp_path) == []


def test_a_crash_stores_nothing_of_its_run_and_the_crashing_file_runs_each_time(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "fine\n", "b.py": "named\n", "c.py": "segv\n", "d.py": "fine\n"})
    first = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert first.returncode == 128 + 11
    assert first.stdout == named("b.py")
    assert ran_files(tmp_path).count(b"c.py") == 3  # all four, then c and d, then c alone
    second = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (second.returncode, second.stdout) == (128 + 11, named("b.py"))
    assert runs(tmp_path) == [[b"c.py"]]


def test_a_file_failing_only_with_another_is_stored_from_its_run_alone(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "pair\n", "b.py": "pair\n", "c.py": "fine\n"})
    result = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert result.returncode == 0  # each passes alone: that is what is stored
    assert runs(tmp_path) == [[b"a.py", b"b.py", b"c.py"], [b"a.py"], [b"b.py", b"c.py"]]
    assert per_file("--", *fake, "--", *names).returncode == 0
    assert runs(tmp_path) == []


def test_deleted_renamed_and_added_files(fake: list[str], tmp_path: Path) -> None:
    write({"a.py": "named\n", "b.py": "fine\n", "c.py": "named\n"})
    assert per_file("--use-hashes", "--", *fake, "--", "a.py", "b.py", "c.py").returncode == 1
    runs(tmp_path)
    Path("a.py").unlink()
    Path("c.py").rename("moved.py")
    Path("new.py").write_text("fine\n")
    after = per_file("--use-hashes", "--", *fake, "--", "b.py", "moved.py", "new.py")
    assert (after.returncode, after.stdout) == (1, named("moved.py"))
    assert ran_files(tmp_path) == [b"moved.py", b"new.py"]
    Path("moved.py").rename("c.py")
    assert per_file("--use-hashes", "--", *fake, "--", "c.py").stdout == named("c.py")
    assert runs(tmp_path) == [], "moved back unchanged: its old result is still good"


def test_file_names_with_spaces_dashes_and_undecodable_bytes(
    fake: list[str], tmp_path: Path
) -> None:
    odd = os.fsdecode(b"caf\xe9 -x.py")
    names = write({"with space.py": "named\n", "-dash.py": "named\n", odd: "named\n"})
    expected = b"".join(named(name) for name in ["with space.py", "-dash.py"])
    expected += os.fsencode(odd) + b":1:1: E1 named problem\n    named\n    ^\n"
    first = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (first.returncode, first.stdout) == (1, expected)
    assert runs(tmp_path) == [[os.fsencode(name) for name in names]]
    second = per_file("--explain", "--", *fake, "--", *names)
    assert second.stdout.startswith(expected)
    assert runs(tmp_path) == []


def test_files_named_like_words_of_a_summary_replay_no_stale_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "import sys\n"
        "bad = [name for name in sys.argv[1:] if 'bad' in open(name).read()]\n"
        "for name in bad:\n"
        "    print(f'{name}:1:1: E1 bad')\n"
        "if bad:\n"
        "    print(f'Checked all files: {len(bad)} errors.')\n"
        "sys.exit(1 if bad else 0)\n"
    )
    linter = stand_in_linter(tmp_path, monkeypatch, source, "UNUSED_RUNS")
    names = write({"all": "fine\n", "b": "bad\n", "c": "fine\n"})
    argv = ["--jobs", "1", "--", *linter, "--", *names]
    first = per_file(*argv)
    assert (first.returncode, first.stdout) == (1, b"b:1:1: E1 bad\nChecked all files: 1 errors.\n")
    Path("c").write_text("bad\n")
    again = per_file(*argv)
    # all's result says nothing: no summary comes back with it.
    assert sorted(again.stdout.splitlines()) == [
        b"Checked all files: 1 errors.",
        b"b:1:1: E1 bad",
        b"c:1:1: E1 bad",
    ]
    assert again.returncode == 1


def test_a_file_named_by_the_last_word_of_another_never_replays_its_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    names = write({"my a.py": "import os\n", "a.py": "x = 1\n"})
    argv = ["--jobs", "1", "--", str(BIN / "ruff"), "check", "--no-cache", "--output-format"]
    argv += ["full", "--", *names]
    per_file(*argv)
    Path("my a.py").write_text("import re\n")
    done = per_file(*argv)
    assert b"`re` imported but unused" in done.stdout
    assert b"`os`" not in done.stdout


def test_a_summary_naming_every_file_is_no_files_so_a_clean_file_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "import sys\n"
        "bad = [name for name in sys.argv[1:] if 'bad' in open(name).read()]\n"
        "if bad:\n"
        "    print(f'Checked {\", \".join(sys.argv[1:])}: {len(bad)} problems')\n"
        "sys.exit(1 if bad else 0)\n"
    )
    linter = stand_in_linter(tmp_path, monkeypatch, source, "UNUSED_RUNS")
    names = write({"a.py": "fine\n", "b.py": "bad\n"})
    argv = ["--jobs", "1", "--", *linter, "--", *names]
    assert per_file(*argv).returncode == 1
    Path("b.py").write_text("fine again\n")
    assert (per_file(*argv).returncode, per_file(*argv).stdout) == (0, b"")


def test_paths_printed_absolute_or_with_dot_slash_are_attributed(
    fake: list[str], tmp_path: Path
) -> None:
    write({"a.py": "named\n", "b.py": "fine\n"})
    script = tmp_path / "absolute.py"
    script.write_text(
        "import os, sys\n"
        "for name in sys.argv[1:]:\n"
        "    if 'named' in open(name).read():\n"
        "        print(os.path.abspath(name) + ':3: bad')\n"
        "        sys.exit(1)\n"
    )
    first = per_file("--jobs", "1", "--", sys.executable, str(script), "--", "a.py", "./b.py")
    absolute = f"{Path.cwd() / 'a.py'}:3: bad\n".encode()
    assert (first.returncode, first.stdout) == (1, absolute)
    second = per_file("--jobs", "1", "--", sys.executable, str(script), "--", "a.py", "./b.py")
    assert (second.returncode, second.stdout) == (1, absolute)


# -- real linters ----------------------------------------------------------------------------------


def counting(tmp_path: Path, tool: str) -> str:
    """Write a wrapper around a real linter that logs the Python files of each run, in one write."""
    wrapper = tmp_path / f"counting-{tool}"
    wrapper.write_text(
        "#!/bin/sh\n"
        'line=""; for arg; do case "$arg" in *.py) line="$line $arg";; esac; done\n'
        'echo "$line" >> "$FAKE_RUNS"\n'
        f'exec {BIN / tool} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def real_runs(tmp_path: Path) -> list[list[bytes]]:
    return [run[0].split() for run in runs(tmp_path)]


@pytest.mark.parametrize(
    ("tool", "args", "config"),
    [
        ("flake8", [], ".flake8"),
        ("ruff", ["check", "--no-cache", "--output-format=concise"], "ruff.toml"),
    ],
)
def test_real_linter_replays_exact_messages_and_reruns_only_what_changed(
    fake: list[str], tmp_path: Path, tool: str, args: list[str], config: str
) -> None:
    if not (BIN / tool).exists():
        pytest.skip(f"{tool} is not installed beside the Python running the tests")
    names = write({f"m{i}.py": "import os\n" if i % 3 == 0 else "x = 1\n" for i in range(9)})
    linter = [counting(tmp_path, tool), *args]
    argv = ["--use-hashes", "--jobs", "2", "--dependencies", config, "--", *linter, "--", *names]
    unwrapped = subprocess.run(
        [BIN / tool, *args, *names], capture_output=True, check=False
    )  # the whole run at once, for comparison
    first = per_file(*argv)
    assert first.returncode == unwrapped.returncode == 1
    messages = [line for line in unwrapped.stdout.splitlines(True) if b".py:" in line]
    assert [line for line in first.stdout.splitlines(True) if b".py:" in line] == messages
    real_runs(tmp_path)

    second = per_file(*argv)
    assert second.returncode == 1
    assert second.stdout == first.stdout  # summaries too, where they were
    assert real_runs(tmp_path) == []

    Path("m1.py").write_text("import sys\n")
    third = per_file(*argv)
    assert third.returncode == 1
    assert b"m1.py:1:1: F401" in third.stdout or b"m1.py:1:8: F401" in third.stdout
    assert real_runs(tmp_path) == [[b"m1.py"]]

    ignore = 'lint.ignore = ["F401"]\n' if tool == "ruff" else "[flake8]\nextend-ignore = F401\n"
    Path(config).write_text(ignore)
    fourth = per_file(*argv)
    assert fourth.returncode == 0
    assert fourth.stdout == (b"All checks passed!\n" if tool == "ruff" else b"")  # once
    assert sorted(real_runs(tmp_path)) == [
        [os.fsencode(name) for name in names[:5]],
        [os.fsencode(name) for name in names[5:]],
    ]


def test_the_size_limit_holds_after_a_run_that_stored_many_results(
    fake: list[str], tmp_path: Path, isolated_cache: Path
) -> None:
    limit = subprocess.run([sys.executable, "-m", "jobstamps", "--max-size", "4K"], check=False)
    assert limit.returncode == 0
    names = write({f"f{i:02}.py": "named\n" * 20 for i in range(40)})
    assert per_file("--", *fake, "--", *names).returncode == 1
    stats = Store(str(isolated_cache)).stats()
    assert 0 < stats["entries"] < 40
    assert stats["bytes"] <= 4096


def test_a_size_limit_smaller_than_a_pack_keeps_some_results(
    fake: list[str], tmp_path: Path, isolated_cache: Path
) -> None:
    limit = subprocess.run([sys.executable, "-m", "jobstamps", "--max-size", "4K"], check=False)
    assert limit.returncode == 0
    names = write({f"f{i:03}.py": "fine\n" for i in range(100)})
    argv = ["--jobs", "1", "--", *fake, "--", *names]
    assert per_file(*argv).returncode == 0
    runs(tmp_path)
    stats = Store(str(isolated_cache)).stats()
    assert 0 < stats["entries"] < 100
    assert stats["bytes"] <= 4096
    assert per_file(*argv).returncode == 0
    assert 0 < len(ran_files(tmp_path)) < 100  # some results were kept and replayed


# -- explanations, faults --------------------------------------------------------------------------


def test_explain_counts_files_runs_and_says_why_each_stale_file_ran(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "fine\n", "b.py": "fine\n", "c.py": "fine\n"})
    per_file("--", *fake, "--", *names)
    Path("b.py").write_text("named\n")
    explained = per_file("--explain", "--", *fake, "--", *names).stdout.decode()
    assert "jobstamp: 3 files: 2 replayed, 1 ran in 1 run\n" in explained
    assert f"jobstamp: running b.py: dependency {Path.cwd() / 'b.py'} changed" in explained
    assert explained.count("jobstamp: running") == 1


def test_explain_with_an_undecodable_file_name_keeps_the_linter_output(
    fake: list[str], tmp_path: Path
) -> None:
    odd = os.fsdecode(b"\xff\xfe.py")
    write({odd: "named\n"})
    result = per_file("--explain", "--", *fake, "--", odd)
    assert result.returncode == 1
    assert b"\xff\xfe.py:1:1: E1 named problem\n" in result.stdout
    assert b"jobstamp: running \xff\xfe.py: " in result.stdout
    assert b"Traceback" not in result.stdout


@pytest.mark.parametrize("entry", [["jobstamps", "--per-file"], ["jobstamps.precommit"]])
def test_deleted_working_directory_runs_uncached_without_a_traceback(
    fake: list[str], tmp_path: Path, entry: list[str]
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"import os, sys, subprocess; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
    script += "sys.exit(subprocess.call(sys.argv[1:]))"
    linter = [sys.executable, "-c", "print('linted')"]
    result = subprocess.run(
        [sys.executable, "-c", script, sys.executable, "-m", *entry, "--", *linter, "--", "a.py"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    assert b"Traceback" not in result.stdout
    assert b"jobstamp: the working directory no longer exists" in result.stdout
    assert b"linted\n" in result.stdout


def test_a_cache_that_cannot_be_written_is_reported_in_one_line(
    fake: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a read-only file system needs root and mount(8)")
    cache = tmp_path / "read-only"
    cache.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,mode=0700,size=1M", "tmpfs", str(cache)], check=False
    )
    if mounted.returncode:
        pytest.skip("this machine cannot mount a tmpfs")
    try:
        monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", str(cache))
        names = write({"a.py": "named\n", "b.py": "fine\n"})
        for _ in range(2):
            result = per_file("--", *fake, "--", *names)
            assert result.returncode == 1
            said = [line for line in result.stdout.splitlines() if line.startswith(b"jobstamp:")]
            assert len(said) == 1
            assert b"results were not stored" in said[0]
            assert b"Read-only file system" in said[0]
            assert named("a.py") in result.stdout
        assert ran_files(tmp_path) == [b"a.py", b"a.py", b"b.py", b"b.py"]
    finally:
        subprocess.run(["umount", str(cache)], check=True)


@pytest.mark.parametrize("fault", ["file-in-the-way", "symlink-loop", "name-too-long"])
def test_unusable_default_cache_lints_batched_without_the_cache(
    fake: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    (tmp_path / "blocker").write_text("")
    (tmp_path / "loop").symlink_to("loop")
    parent = {"file-in-the-way": "blocker", "symlink-loop": "loop", "name-too-long": "x" * 300}
    monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", str(tmp_path / parent[fault] / "cache"))
    names = write({"a.py": "named\n", "b.py": "fine\n"})
    result = per_file("--", *fake, "--", *names)
    assert result.returncode == 1
    lines = result.stdout.splitlines(True)
    assert [line for line in lines if line.startswith(b"jobstamp: ")] == [lines[0]]
    assert b"running the command without the cache" in lines[0]
    assert b"".join(lines[1:]) == named("a.py")
    assert runs(tmp_path) == [[b"a.py", b"b.py"]]


def test_a_cache_made_unsafe_while_linting_stores_nothing_and_says_so_once(
    fake: list[str], tmp_path: Path, isolated_cache: Path
) -> None:
    script = tmp_path / "opens-the-cache.py"
    script.write_text(
        "import os, sys\n"
        "os.chmod(os.environ['JOBSTAMPS_CACHE_DIR'], 0o777)\n"
        "print(sys.argv[-1] + ':1: checked')\n"
        "sys.exit(1)\n"
    )
    write({"a.py": "fine\n", "b.py": "fine\n"})
    assert per_file("--", *fake, "--", "a.py").returncode == 0  # the cache now exists
    try:
        result = per_file("--", sys.executable, str(script), "--", "b.py")
        assert result.returncode == 1
        said = [line for line in result.stdout.splitlines(True) if line.startswith(b"jobstamp:")]
        assert len(said) == 1
        assert b"results were not stored" in said[0]
        assert b"writable by other users" in said[0]
        assert b"b.py:1: checked\n" in result.stdout
    finally:
        isolated_cache.chmod(0o700)
    assert per_file("--", *fake, "--", "b.py").returncode == 0
    assert runs(tmp_path)[-1] == [b"b.py"]  # nothing was stored for b.py: it ran again


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--", "lint", "a.py"], b"the command must end with '--'"),
        (["a.py"], b"no command given"),
        (["--", "--", "a.py"], b"no command between the two '--'"),
        (["--jobs", "0", "--", "lint", "--", "a.py"], b"--jobs must be at least 1"),
        # FOO=1 names no variable: the key would never change with FOO.
        (["--env", "FOO=1", "--", "lint", "--", "a.py"], b"--env takes the name of a variable"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv: list[str], message: bytes) -> None:
    result = per_file(*argv)
    assert result.returncode == 2
    assert result.stdout.startswith(b"jobstamp: ")
    assert message in result.stdout
    assert result.stdout.count(b"\n") == 1


def test_per_file_may_come_after_other_options(fake: list[str], tmp_path: Path) -> None:
    names = write({"a.py": "named\n", "b.py": "fine\n"})
    options = ["--use-hashes", "--per-file", "--jobs", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "jobstamps", *options, "--", *fake, "--", *names],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, named("a.py"))
    assert runs(tmp_path) == [[b"a.py", b"b.py"], [b"b.py"]]


def test_command_help_lists_the_per_file_mode() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobstamps", "--help"], capture_output=True, check=True
    )
    assert b"--per-file" in result.stdout


def test_help_names_the_form() -> None:
    result = per_file("--help")
    assert result.returncode == 0
    assert b"jobstamp --per-file [OPTION...] -- COMMAND [ARG...] -- FILE..." in result.stdout


# -- the rule, on recorded output ------------------------------------------------------------------


def test_coloured_messages_are_divided_without_running_files_again(
    fake: list[str], tmp_path: Path
) -> None:
    script = tmp_path / "colour.py"
    script.write_text(
        "import os, sys\n"
        "with open(os.environ['FAKE_RUNS'], 'a') as log:\n"
        "    log.write(chr(0).join(sys.argv[1:]) + chr(10))\n"
        "bad = [n for n in sys.argv[1:] if 'named' in open(n).read()]\n"
        "for n in bad:\n"
        "    print(f'\\x1b[1m{n}\\x1b[0m\\x1b[36m:\\x1b[0m1: bad')\n"
        "sys.exit(1 if bad else 0)\n"
    )
    names = write({"a.py": "named\n", "b.py": "named\n"})
    first = per_file("--jobs", "1", "--", sys.executable, str(script), "--", *names)
    expected = b"".join(f"\x1b[1m{n}\x1b[0m\x1b[36m:\x1b[0m1: bad\n".encode() for n in names)
    assert (first.returncode, first.stdout) == (1, expected)
    second = per_file("--jobs", "1", "--", sys.executable, str(script), "--", *names)
    assert (second.returncode, second.stdout) == (1, expected)
    assert runs(tmp_path) == [[b"a.py", b"b.py"]]  # one run, divided: nothing ran again


def test_batches_respect_jobs_and_the_length_limit() -> None:
    files = [f"file{i:02}.py" for i in range(10)]  # 11 bytes each with the separator
    assert [len(b) for b in perfile.batches(list(range(10)), files, 3, 10_000)] == [4, 4, 2]
    assert [len(b) for b in perfile.batches(list(range(10)), files, 1, 34)] == [3, 3, 3, 1]
    assert perfile.batches([], files, 2, 100) == []


def lookups(cache: Path) -> tuple[int, int]:
    stats = Store(str(cache)).stats()
    return stats["hits"], stats["misses"]


def test_a_cold_per_file_run_counts_a_miss_per_file_even_when_nothing_is_stored(
    fake: list[str], isolated_cache: Path
) -> None:
    names = write({f"f{i}.py": "named\n" for i in range(5)})
    failed = per_file("--no-store-failures", "--", *fake, "--", *names)
    assert failed.returncode == 1
    assert Store(str(isolated_cache)).stats()["entries"] == 0
    assert lookups(isolated_cache) == (0, 5)
    shutil.rmtree(isolated_cache)
    write(dict.fromkeys(names, "fine\n"))
    for _ in range(2):
        assert per_file("--", *fake, "--", *names).returncode == 0
    assert lookups(isolated_cache) == (5, 5)


def test_a_held_shared_failure_counts_as_a_hit_or_a_miss_never_both(
    fake: list[str], isolated_cache: Path
) -> None:
    names = write({"a.yaml": "warn\n", "b.yaml": "named\n"})
    per_file("--jobs", "1", "--", *fake, "--", *names)
    assert lookups(isolated_cache) == (0, 2)
    Path("b.yaml").write_text("fine\n")  # a.yaml's stored failure is held, then runs again
    per_file("--jobs", "1", "--", *fake, "--", *names)
    assert lookups(isolated_cache) == (0, 4)
    per_file("--jobs", "1", "--", *fake, "--", *names)
    assert lookups(isolated_cache) == (2, 4)
    Path("b.yaml").write_text("named\n")
    per_file("--jobs", "1", "--", *fake, "--", *names)  # b.yaml fails: a.yaml's verdict stands
    assert lookups(isolated_cache) == (3, 5)


def test_a_file_named_through_a_link_and_dot_dot_keeps_only_its_own_messages(
    fake: list[str], tmp_path: Path
) -> None:
    # link/../a.py is real/a.py, as the kernel opens it: not the a.py beside the link.
    Path("real/inner").mkdir(parents=True)
    Path("link").symlink_to(Path.cwd() / "real" / "inner")
    write({"real/a.py": "fine\n", "a.py": "warn\n"})
    names = ["link/../a.py", "a.py"]
    first = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (first.returncode, first.stdout) == (0, b"a.py:1:1: W1 warning only\n")
    Path("a.py").write_text("fine\n")
    second = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (second.returncode, second.stdout) == (0, b"")
    assert runs(tmp_path) == [[b"link/../a.py", b"a.py"], [b"a.py"]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--remote", "bogus://cache"], b"remote cache URL 'bogus://cache' is not supported"),
        (["--remote", "http://127.0.0.1:1", "--base-dir", "nowhere"], b"base directory nowhere"),
    ],
)
def test_a_remote_that_cannot_work_is_a_usage_error_not_an_internal_one(
    fake: list[str], options: list[str], message: bytes
) -> None:
    names = write({"a.py": "fine\n"})
    result = per_file(*options, "--", *fake, "--", *names)
    assert result.returncode == 2
    assert result.stdout.startswith(b"jobstamp: " + message)
    assert result.stdout.count(b"\n") == 1


# -- replay fidelity through the real tools --------------------------------------------------------

PYTHON = {
    "a.py": "import os\nx = 1\n",
    "b.py": "import sys\ny=2\n",
    "c.py": '"""C."""\n\nZ = 3\n',
    "d.py": "import re\n",
}
YAML = {"a.yaml": "a: 1\n", "b.yaml": "b:  2\n", "c.yaml": "---\nc: 3\n"}
SHELL = {"a.sh": "#!/bin/sh\necho $x\n", "b.sh": "#!/bin/sh\ncd $d\nls $y\n", "c.sh": "#!/bin/sh\n"}
SPELLING = {"a.txt": "teh cat\n", "b.txt": "recieve\n", "c.txt": "ok\n"}
C = {
    "a.c": "int main(void){int a[2]; a[3]=0; return 0;}\n",
    "b.c": "int g(void){char *p=0; return *p;}\n",
    "c.c": "int f(void){return 1;}\n",
}
JS = {"a.js": "var a = 1;\n", "b.js": "let b = 2;\nfoo();\n", "c.js": "export const c = 3;\n"}
ESLINT = ["--no-config-lookup", "--rule", "no-undef: error"]
#: tool, its arguments, the files, and a content of b.* that the tool has nothing to say about.
TOOLS = [
    ("flake8", [], PYTHON, '"""B."""\n'),
    ("ruff", ["check", "--no-cache", "--output-format=full"], PYTHON, '"""B."""\n'),
    ("ruff", ["check", "--no-cache", "--output-format=concise"], PYTHON, '"""B."""\n'),
    ("ruff", ["check", "--no-cache", "--output-format=grouped"], PYTHON, '"""B."""\n'),
    ("pycodestyle", [], PYTHON, '"""B."""\n'),
    ("pylint", ["--exit-zero", "--score=n"], PYTHON, '"""B."""\n'),
    ("isort", ["--check-only"], PYTHON, '"""B."""\n'),
    ("black", ["--check"], PYTHON, '"""B."""\n'),
    ("yamllint", ["-f", "standard"], YAML, "---\nb: 2\n"),
    ("yamllint", ["-f", "parsable"], YAML, "---\nb: 2\n"),
    ("shellcheck", [], SHELL, "#!/bin/sh\necho b\n"),
    ("shellcheck", ["-f", "gcc"], SHELL, "#!/bin/sh\necho b\n"),
    ("codespell", [], SPELLING, "receive\n"),
    ("cppcheck", ["--quiet"], C, "int g(void){return 0;}\n"),
    ("cppcheck", [], C, "int g(void){return 0;}\n"),
    # eslint (npm install --global eslint): its stylish format, names alone on a line.
    ("eslint", [*ESLINT, "--rule", "no-unused-vars: warn"], JS, "export const b = 2;\n"),
]


def logging_tool(tmp_path: Path, tool: str) -> str:
    """Write a wrapper around ``tool`` that logs the words of each run, one run a line."""
    found = BIN / tool if (BIN / tool).exists() else shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed")
    wrapper = tmp_path / f"logging-{tool}"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "$FAKE_RUNS"\nexec {found} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def mentions(output: bytes, name: str) -> list[bytes]:
    """The lines of ``output`` that name file ``name``, or its module (pylint's header)."""
    module = b"Module " + os.fsencode(Path(name).stem) + b"\n"
    return [line for line in output.splitlines(True) if name.encode() in line or module in line]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tool", "args", "files", "clean"), TOOLS, ids=[" ".join([t[0], *t[1]]) for t in TOOLS]
)
def test_real_tools_replay_what_the_cold_run_printed_and_each_file_its_own_messages(
    fake: list[str],
    tmp_path: Path,
    tool: str,
    args: list[str],
    files: dict[str, str],
    clean: str,
) -> None:
    names = write(files)
    argv = ["--use-hashes", "--jobs", "1", "--", logging_tool(tmp_path, tool), *args, "--", *names]
    cold = per_file(*argv)
    # Each failing file names itself: a failed run is never bisected, at most its silent
    # files run again together.
    assert len(runs(tmp_path)) <= 2
    warm = per_file(*argv)
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout)
    assert runs(tmp_path) == []

    edited = next(name for name in names if name.startswith("b."))
    Path(edited).write_text(clean)
    after = per_file(*argv)
    checked = {os.fsencode(name) for name in names}
    ran = [[word for word in run[0].split() if word in checked] for run in runs(tmp_path)]
    # The edited file ran alone; files whose stored failure it shared may run again without it.
    assert ran[0] == [edited.encode()]
    assert len(ran) <= 2
    for name in names:
        if name != edited:
            assert mentions(after.stdout, name) == mentions(cold.stdout, name), name
    alone = subprocess.run(
        [logging_tool(tmp_path, tool), *args, edited],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    assert mentions(after.stdout, edited) == mentions(alone.stdout, edited)


# -- failures of no file, output, duplicates, options ----------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_configuration_error_is_shown_once_after_a_few_runs_and_stored_for_no_file(
    fake: list[str], tmp_path: Path, isolated_cache: Path, jobs: str
) -> None:
    names = write({f"f{i:02}.py": "x = 1\n" for i in range(64)})
    Path("pyproject.toml").write_text("[tool.ruff\n")
    ruff = logging_tool(tmp_path, "ruff")
    for _ in range(2):
        result = per_file("--jobs", jobs, "--", ruff, "check", "--no-cache", "--", *names)
        assert result.returncode == 2
        assert result.stdout.count(b"ruff failed") == 1
        assert len(runs(tmp_path)) <= 3
    assert Store(str(isolated_cache)).stats()["entries"] == 0


def test_an_option_the_linter_rejects_is_reported_once(fake: list[str], tmp_path: Path) -> None:
    names = write({f"f{i}.py": "x = 1\n" for i in range(8)})
    flake8 = logging_tool(tmp_path, "flake8")
    result = per_file("--jobs", "1", "--", flake8, "--max-line-length=abc", "--", *names)
    assert result.returncode == 2
    assert result.stdout.count(b"invalid int value: 'abc'") == 1
    assert len(runs(tmp_path)) == 3  # the batch, then its two halves, which failed alike


def test_silent_failures_in_both_halves_are_still_bisected_to_their_files(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({f"f{i}.py": "silent\n" if i in {1, 6} else "fine\n" for i in range(8)})
    first = per_file("--jobs", "1", "--", *fake, "--", *names)
    assert (first.returncode, first.stdout) == (1, b"")
    runs(tmp_path)
    for name in names:  # each file's own verdict was stored
        alone = per_file("--", *fake, "--", name)
        assert alone.returncode == (1 if name in {"f1.py", "f6.py"} else 0), name
    assert runs(tmp_path) == []


def test_a_passing_warning_that_names_its_file_mid_line_is_replayed_on_its_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "lint.py"
    script.write_text(
        "import sys\n"
        "for name in sys.argv[1:]:\n"
        "    if 'long' in open(name).read():\n"
        "        print(f'lint-warning: {name}: line too long', file=sys.stderr)\n"
    )
    monkeypatch.chdir(tmp_path)
    names = write({"a.py": "short\n", "b.py": "short\n", "c.py": "long\n"})
    argv = [sys.executable, "-m", "jobstamps", "--per-file", "--jobs", "1", "--"]
    argv += [sys.executable, str(script), "--", *names]
    for _ in range(3):
        result = subprocess.run(argv, capture_output=True, check=False)
        assert (result.returncode, result.stdout) == (0, b"")
        assert result.stderr == b"lint-warning: c.py: line too long\n"


def test_a_run_waiting_for_a_sibling_that_crashed_is_bisected_all_the_same(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "silent\n", "b.py": "fine\n", "c.py": "segv\n", "d.py": "fine\n"})
    result = per_file("--jobs", "2", "--", *fake, "--summary", "--", *names)
    assert (result.returncode, result.stdout) == (128 + 11, b"Found 1 errors.\n")
    assert [b"a.py"] in runs(tmp_path)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_write_error_on_standard_output_is_reported_cold_and_warm(
    fake: list[str], tmp_path: Path
) -> None:
    names = write({"a.py": "warn\n", "b.py": "fine\n"})
    for _ in range(2):
        with open("/dev/full", "wb") as full:
            result = subprocess.run(
                [sys.executable, "-m", "jobstamps", "--per-file", "--", *fake, "--", *names],
                stdout=full,
                stderr=subprocess.PIPE,
                check=False,
            )
        assert result.returncode == 1
        assert (
            result.stderr == b"jobstamp: cannot write standard output (No space left on device)\n"
        )


def test_a_file_given_twice_prints_its_messages_twice_as_the_unwrapped_run_does(
    fake: list[str], tmp_path: Path
) -> None:
    write({"a.py": "named\n", "b.py": "fine\n"})
    for _ in range(2):
        result = per_file("--jobs", "1", "--", *fake, "--", "a.py", "b.py", "a.py")
        assert (result.returncode, result.stdout) == (1, named("a.py") * 2)
    assert runs(tmp_path) == [[b"a.py", b"b.py"], [b"b.py"]]  # checked once


@pytest.mark.parametrize("option", ["--jobs=2", "--summary"])
def test_options_of_per_file_mode_alone_are_refused_elsewhere(option: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobstamps", option, "--", "true"], capture_output=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"jobstamp: {option[:6]}".encode())
    assert b"works only with --per-file" in result.stderr


def test_help_lists_the_options_of_per_file_mode() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobstamps", "--help"], capture_output=True, check=True
    )
    assert b"--jobs N" in result.stdout
    assert b"--summary" in result.stdout


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_summary_line_says_how_many_files_were_replayed_and_ran(
    fake: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    names = write({"a.py": "named\n", "b.py": "fine\n", "c.py": "fine\n"})
    options = ["--summary"] if how == "flag" else []
    if how == "environment":
        monkeypatch.setenv("JOBSTAMPS_SUMMARY", "1")
    first = per_file(*options, "--", *fake, "--", *names)
    assert first.stdout.endswith(b"jobstamp: 0 files replayed, 3 ran\n")
    Path("c.py").write_text("warn\n")
    second = per_file(*options, "--", *fake, "--", *names)
    assert second.stdout.endswith(b"jobstamp: 2 files replayed, 1 ran\n")
    monkeypatch.delenv("JOBSTAMPS_SUMMARY", raising=False)
    assert b"replayed" not in per_file("--", *fake, "--", *names).stdout


# -- progress on a terminal -----------------------------------------------------------------------

PROGRESS = b"files done"


def on_terminal(*argv: str, stderr_piped: bool = False) -> tuple[int, bytes, bytes]:
    """Run ``jobstamp --per-file ARGV...`` with both streams on a new pseudo-terminal (stderr
    into a pipe, if ``stderr_piped``); return its status, the terminal's bytes and the pipe's."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobstamps", "--per-file", *argv],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE if stderr_piped else slave,
        )
    finally:
        os.close(slave)
    try:
        output = read_until(master, None)
        piped = proc.stderr.read() if proc.stderr is not None else b""
        return proc.wait(TIMEOUT), output, piped
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        if proc.stderr is not None:
            proc.stderr.close()


def screen(output: bytes) -> list[bytes]:
    """The lines a terminal shows once it has written ``output`` (carriage returns and erasing
    to the end of the line applied)."""
    lines: list[bytes] = []
    line, column = bytearray(), 0
    for token in re.split(rb"(\r\n|\n|\r|\x1b\[K)", output):
        if token in {b"\r\n", b"\n"}:
            lines.append(bytes(line))
            line, column = bytearray(), 0
        elif token == b"\r":
            column = 0
        elif token == b"\x1b[K":
            del line[column:]
        else:
            line[column : column + len(token)] = token
            column += len(token)
    return [*lines, bytes(line)] if line else lines


@pytest.fixture
def slow_terminal(fake: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stand-in linter, taking longer than a progress line waits for, on a terminal."""
    monkeypatch.setenv("FAKE_SLEEP", "1.5")
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("PRE_COMMIT", raising=False)
    monkeypatch.delenv("MAKELEVEL", raising=False)
    monkeypatch.delenv("JOBSTAMPS_PROGRESS", raising=False)
    write({"a.py": "named\n", "c.py": "warn\n"})
    return ["--jobs", "1", "--", *fake, "--", "a.py", "c.py"]


def test_a_long_run_on_a_terminal_shows_progress_then_leaves_the_screen_as_without_it(
    slow_terminal: list[str], tmp_path: Path
) -> None:
    status, output, _ = on_terminal(*slow_terminal)
    assert status == 1
    assert b"\rjobstamp: 0/2 files done (0 replayed, 0 ran)\x1b[K" in output
    messages = named("a.py") + b"c.py:1:1: W1 warning only\n"
    assert screen(output) == messages.splitlines()  # erased before the messages, and at the end
    assert len(runs(tmp_path)) == 1
    # Replayed at once: no line at all, byte for byte what the run left on the screen.
    assert on_terminal(*slow_terminal) == (1, messages.replace(b"\n", b"\r\n"), b"")
    assert runs(tmp_path) == []


def test_progress_over_files_that_pass_silently_is_erased_at_the_end(
    slow_terminal: list[str],
) -> None:
    write({"a.py": "ok\n", "c.py": "ok\n"})
    status, output, _ = on_terminal(*slow_terminal)
    assert status == 0
    assert PROGRESS in output
    assert output.endswith(b"\r\x1b[K")
    assert screen(output) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("PRE_COMMIT", "1"), ("MAKELEVEL", "1"), ("TERM", "dumb"), ("JOBSTAMPS_PROGRESS", "0")],
)
def test_no_progress_inside_pre_commit_or_make_on_a_dumb_terminal_or_when_turned_off(
    slow_terminal: list[str], monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    status, output, _ = on_terminal(*slow_terminal)
    assert (status, output) == (
        1,
        named("a.py").replace(b"\n", b"\r\n") + b"c.py:1:1: W1 warning only\r\n",
    )


def test_no_progress_when_stderr_is_a_pipe_even_with_stdout_on_a_terminal(
    slow_terminal: list[str],
) -> None:
    status, shown, piped = on_terminal(*slow_terminal, stderr_piped=True)
    assert (status, piped) == (1, b"")
    assert shown == named("a.py").replace(b"\n", b"\r\n") + b"c.py:1:1: W1 warning only\r\n"


def test_no_progress_into_a_pipe_byte_for_byte(slow_terminal: list[str]) -> None:
    result = per_file(*slow_terminal)
    assert (result.returncode, result.stdout) == (1, named("a.py") + b"c.py:1:1: W1 warning only\n")
