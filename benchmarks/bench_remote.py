"""Sharing results through a remote cache: flake8 over Django through pre-commit, on a machine
whose local cache is empty but whose team's remote cache is warm.

Run from a checkout (needs nginx and redis-server installed, as ``.ci/run`` installs them)::

    python benchmarks/bench_remote.py                  # full run, a table (about ten minutes)
    python benchmarks/bench_remote.py --rounds 1       # one round
    python benchmarks/bench_remote.py --json           # the same figures as JSON on stdout

It sets up the Django repository of ``bench_perfile.py`` (the same sdist, flake8
configuration and ``jobstamp-flake8`` hook) as machine A, and a fresh ``git clone`` of it at
another path as machine B, each with a local cache and a pre-commit home of its own. For each
remote (nginx with WebDAV, ``subdirs`` layout; redis-server; both on 127.0.0.1), A lints
everything with the remote set, which stores every file's result there. Then each round times
on B: flake8 unwrapped; the hook with an empty local cache and the remote warm (per remote);
the hook with an empty local cache and no remote (B's cold run); and the hook with nothing
changed (a local warm run). Goal: B with the remote warm <= 10% of the unwrapped lint.

Every wrapped run must print the unwrapped run's messages and exit status, and a run with the
remote warm must find files there (its ``--show-stats`` remote counts say how many: a
failure the per-file mode could pin only on a whole batch is not shared, and runs on B). Last, the
cost of one lookup is measured on each remote: a batch of many keys in one call (how the
per-file mode asks), and one key per call.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchlib
from bench_perfile import (
    MESSAGE,
    Scene,
    django_repository,
    fetch_django,
    run_quiet,
    settle,
    tool_versions,
)
from benchlib import BenchError, clean_env, quantile

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

GOAL = 0.10
REMOTES = ("http", "redis")
LOOKUP_KEYS = 2000
SINGLE_LOOKUPS = 200


def say(message: str) -> None:
    """Report progress on stderr."""
    print(f"bench_remote: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def servers(workdir: str) -> Iterator[dict[str, str]]:
    """Run nginx (WebDAV) and redis-server on 127.0.0.1; yield the remote URL of each."""
    sys.path.insert(0, os.path.join(benchlib.REPO, "tests"))
    try:
        from servers import Nginx, RedisServer
    except ImportError as error:
        raise BenchError(f"the test servers cannot be loaded ({error}); install pytest") from None
    for program in ("nginx", "redis-server"):
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
        if shutil.which(program, path=path) is None:
            raise BenchError(f"{program} is not installed (.ci/run installs it)")
    with (
        Nginx(Path(workdir) / "nginx").running() as nginx,
        RedisServer(Path(workdir) / "redis").running() as redis,
    ):
        yield {"http": f"{nginx.url}/cache?layout=subdirs", "redis": redis.url}


class Machine:
    """A scene (environment, local cache, pre-commit home) with its checkout of Django."""

    def __init__(self, scene: Scene, repo: str) -> None:
        self.scene = scene
        self.repo = repo

    def lint(self, config: str, remote: str | None) -> tuple[float, int, list[str]]:
        """Run pre-commit with ``config``; return its time, status and flake8 messages."""
        env = self.scene.env
        env.pop("JOBSTAMPS_REMOTE", None)
        if remote:
            env["JOBSTAMPS_REMOTE"] = remote
        command = [self.scene.tool("pre-commit"), "run", "--all-files", "--color", "never"]
        seconds, code, output = self.scene.timed([*command, "-c", config], self.repo)
        env.pop("JOBSTAMPS_REMOTE", None)
        if "jobstamp: remote cache" in output:
            line = next(x for x in output.splitlines() if x.startswith("jobstamp: remote cache"))
            raise BenchError(f"the remote failed during a timed run: {line}")
        return seconds, code, sorted(x for x in output.splitlines() if MESSAGE.match(x))

    def remote_counts(self) -> dict[str, int]:
        """The remote hits and misses counted in the local cache so far."""
        if not os.path.isdir(self.scene.cache):
            return {"hits": 0, "misses": 0}
        text = run_quiet([self.scene.tool("jobstamp"), "--show-stats"], self.scene.env)
        found = dict(re.findall(r"^remote (hits|misses)\s+(\d+)$", text, re.MULTILINE))
        return {name: int(found.get(name, 0)) for name in ("hits", "misses")}


class Timings:
    """Samples by step, checked against the unwrapped run's status and messages."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.reference: tuple[int, list[str]] | None = None

    def add(self, step: str, result: tuple[float, int, list[str]]) -> None:
        seconds, code, messages = result
        if self.reference is None:
            self.reference = (code, messages)
        elif (code, messages) != self.reference:
            raise BenchError(
                f"{step}: exit status {code} and {len(messages)} messages; the unwrapped run "
                f"gave {self.reference[0]} and {len(self.reference[1])}"
            )
        self.samples.setdefault(step, []).append(seconds)

    def summary(self) -> dict[str, Any]:
        medians = {step: statistics.median(values) for step, values in self.samples.items()}
        base = medians["unwrapped"]
        return {
            "median_s": medians,
            "p10_s": {step: quantile(values, 0.1) for step, values in self.samples.items()},
            "p90_s": {step: quantile(values, 0.9) for step, values in self.samples.items()},
            "ratio": {step: medians[step] / base for step in medians if step != "unwrapped"},
        }


def bench_django(workdir: str, bindir: str, urls: dict[str, str], args: Any) -> dict[str, Any]:
    """Machine A fills each remote; machine B, a fresh clone elsewhere, is timed."""
    a_scene = Scene(os.path.join(workdir, "a"), bindir)
    sdist = fetch_django(a_scene, args.download_dir)
    a_repo, files = django_repository(a_scene, sdist)
    b_scene = Scene(os.path.join(workdir, "b"), bindir)
    b_repo = os.path.join(b_scene.workdir, "checkout", "django")
    run_quiet(["git", "clone", "--quiet", a_repo, b_repo], b_scene.env)
    a, b = Machine(a_scene, a_repo), Machine(b_scene, b_repo)
    settle()
    timings = Timings()
    say("warming up: unwrapped on B, then the hook on A once per remote (filling it)")
    timings.add("warm-up", b.lint("unwrapped.yaml", None))
    uploads: dict[str, float] = {}
    found: dict[str, dict[str, int]] = {}
    for name in REMOTES:
        a.scene.clear_cache()
        seconds, code, messages = a.lint("wrapped.yaml", urls[name])
        timings.add("warm-up", (seconds, code, messages))
        uploads[name] = seconds
    for turn in range(args.rounds):
        say(f"Django: round {turn + 1} of {args.rounds}")
        timings.add("unwrapped", b.lint("unwrapped.yaml", None))
        for name in REMOTES:
            b.scene.clear_cache()
            before = b.remote_counts()
            timings.add(f"B, remote warm ({name})", b.lint("wrapped.yaml", urls[name]))
            after = b.remote_counts()
            found[name] = {k: after[k] - before[k] for k in ("hits", "misses")}
            if not found[name]["hits"]:
                raise BenchError(f"B found nothing in the {name} remote: {after}")
        b.scene.clear_cache()
        timings.add("B, cold (no remote)", b.lint("wrapped.yaml", None))
        timings.add("B, local warm", b.lint("wrapped.yaml", None))
    del timings.samples["warm-up"]
    result = timings.summary()
    assert timings.reference is not None  # noqa: S101 - set by the first run
    return {
        **result,
        "rounds": args.rounds,
        "sdist": os.path.basename(sdist),
        "python_files": files,
        "a_cold_with_upload_s": uploads,
        "b_remote_lookups": found,
        "exit_status": timings.reference[0],
        "messages": len(timings.reference[1]),
        "goal": GOAL,
        "goals_met": {
            name: result["ratio"][f"B, remote warm ({name})"] <= GOAL for name in REMOTES
        },
    }


def bench_lookups(urls: dict[str, str]) -> dict[str, Any]:
    """Time lookups of small records on each remote: many keys per call, and one per call."""
    sys.path.insert(0, benchlib.REPO)
    from jobstamps.storage.records import Record
    from jobstamps.storage.remote import open_remote

    results: dict[str, Any] = {}
    for name in REMOTES:
        remote = open_remote(urls[name] + ("&" if "?" in urls[name] else "?") + "prefix=lk:")
        if remote is None:
            raise BenchError(f"the {name} remote cannot be opened")
        keys = [os.urandom(20).hex() for _ in range(LOOKUP_KEYS)]
        output = b"x.py:1:1: E501 line too long (90 > 88 characters)\n"
        for key in keys:
            remote.put_record(Record(key, exit_code=1, chunks=[(1, len(output))], data=output))
        if not remote.flush(120):
            raise BenchError(f"uploads to the {name} remote did not finish")
        remote.get_records(keys[:50])  # connections opened, as in any run after its first
        start = time.perf_counter()
        found = remote.get_records(keys)
        batch = time.perf_counter() - start
        start = time.perf_counter()
        for key in keys[:SINGLE_LOOKUPS]:
            remote.get_records([key])
        single = time.perf_counter() - start
        if len(found) != len(keys) or not remote.usable:
            raise BenchError(f"the {name} remote lost records: {remote.stats.as_dict()}")
        remote.close()
        results[name] = {
            "batch_keys": len(keys),
            "batch_us_per_key": batch / len(keys) * 1e6,
            "single_us_per_key": single / SINGLE_LOOKUPS * 1e6,
        }
    return results


def table(results: dict[str, Any]) -> str:
    """Render the results as a compact, human-readable table."""
    lines = [
        f"jobstamps {results['jobstamps']}, Python {results['python']}, "
        + benchlib.describe_machine(results)
    ]
    django = results.get("django")
    if django:
        lines += [
            "",
            (
                f"flake8 over {django['sdist']} ({django['python_files']} *.py files) through "
                f"pre-commit on machine B: medians of {django['rounds']} rounds"
            ),
            f"  {'':26}{'median':>10}{'p10':>10}{'p90':>10}{'vs unwrapped':>14}",
        ]
        for step, median in django["median_s"].items():
            row = (
                f"  {step:26}{median:>8.2f} s{django['p10_s'][step]:>8.2f} s"
                f"{django['p90_s'][step]:>8.2f} s"
            )
            ratio = django["ratio"].get(step)
            if ratio is not None:
                row += f"{ratio:>13.1%}"
                for name in REMOTES:
                    if step == f"B, remote warm ({name})":
                        met = "met" if django["goals_met"][name] else "MISSED"
                        row += f"   goal <= {django['goal']:.0%}: {met}"
            lines.append(row)
        uploads = ", ".join(f"{n} {s:.2f} s" for n, s in django["a_cold_with_upload_s"].items())
        found = ", ".join(
            f"{n} {c['hits']} hits, {c['misses']} misses"
            for n, c in django["b_remote_lookups"].items()
        )
        lines += [
            f"  A, cold with the remote set (uploading every result): {uploads}",
            f"  B with the remote warm, last round: {found}",
            (
                f"  every run printed the unwrapped run's {django['messages']} messages and "
                f"exit status {django['exit_status']}"
            ),
        ]
    lookups = results.get("lookups")
    if lookups:
        lines += ["", "one lookup of a small record over loopback:"]
        for name, figures in lookups.items():
            lines.append(
                f"  {name:6} {figures['batch_us_per_key']:>8.1f} us per key in a batch of "
                f"{figures['batch_keys']}, {figures['single_us_per_key']:>8.1f} us alone"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, measure, and return every figure."""
    results: dict[str, Any] = {**benchlib.machine()}
    with benchlib.workdir("bench_remote", keep=args.keep) as workdir:
        if args.venv is not None:
            bindir = benchlib.bin_dir(os.path.abspath(args.venv))
        else:
            venv = os.path.join(workdir, "venv")
            requirements = ("flake8", "pre-commit", "redis>=5")
            bindir = benchlib.install(venv, clean_env(), *requirements, who="bench_remote")
        results.update(tool_versions(os.path.join(bindir, "python"), clean_env()))
        with servers(workdir) as urls:
            if not args.skip_django:
                results["django"] = bench_django(workdir, bindir, urls, args)
            results["lookups"] = bench_lookups(urls)
        results["load_average_end"] = benchlib.load_average()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON); return the exit status."""
    parser = benchlib.django_parser(__doc__, 3, "flake8, pre-commit and redis")
    parser.add_argument(
        "--skip-django", action="store_true", help="only the lookup costs (no download)"
    )
    args = parser.parse_args(argv)
    return benchlib.report("bench_remote", args, run, table)


if __name__ == "__main__":
    raise SystemExit(main())
