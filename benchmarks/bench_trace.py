"""What ``jobstamp --trace`` costs: traced hits and cold runs of flake8 and mypy.

Run from a checkout, in an environment where ``flake8`` and ``mypy`` are installed beside the
Python that runs it (``--tools DIR`` names another directory), with ``strace`` on ``PATH``::

    python benchmarks/bench_trace.py             # full run, a table (a few minutes)
    python benchmarks/bench_trace.py --quick     # fewer rounds
    python benchmarks/bench_trace.py --json      # the same figures as JSON on stdout

It reports the medians of:

1. a cache hit of ``jobstamp --trace -- flake8 a.py`` against a hit of ``jobstamp
   --dependencies a.py setup.cfg -- flake8 a.py`` (goal: at most 1.5x), and how many paths
   the traced set holds; a cold flake8 run unwrapped and traced, for context;
2. mypy over a real typed package of a few hundred modules: the ``mypy`` and ``mypyc``
   packages of that mypy installation, copied into a temporary directory (their ``.py``
   files; tests left out). A cold run (no ``.mypy_cache``) unwrapped and through ``jobstamp
   --trace --force`` (goal: at most 1.3x; their CPU time too, which load disturbs less), and
   mypy's own warm incremental run against a traced hit (goal: the hit at least 5x faster);
3. the same mypy run on a second machine: a fresh copy of the package at another path, as
   deep, with an empty local cache of its own, after the first stored its traced result in a
   remote cache (nginx with WebDAV on 127.0.0.1, as ``bench_remote.py`` runs it). Its cold
   run (no ``.mypy_cache``) against a traced hit filled from the remote, each with a new
   empty local cache (goal: the hit at most 5% of the cold run).

Contenders take turns in each round. Every hit is checked to be one (``--explain`` says
``replayed``) before it is timed; the files of the flake8 project are dated older than the
2-second window in which jobstamps hashes recently modified files. Caches live in a
temporary directory, removed at the end; ``PYTHONDONTWRITEBYTECODE`` and the ``JOBSTAMPS_*``
settings are removed from the environment of the timed processes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

import benchlib
from benchlib import RACY_WINDOW_S, BenchError, clean_env, quantile

FLAKE8_GOAL = 1.5  # traced hit / untraced hit, at most
COLD_GOAL = 1.3  # traced cold mypy / cold mypy, at most
WARM_GOAL = 5.0  # mypy warm incremental / traced hit, at least
REMOTE_GOAL = 0.05  # traced hit filled from a remote / cold mypy, on a second machine, at most


#: CPU seconds (user and system) of every process each contender ran, by contender: under
#: load, a steadier measure of the work tracing adds than wall time.
CPU: dict[str, list[float]] = {}


def finished(command: list[str], cwd: str, env: dict[str, str]) -> tuple[float, str]:
    """Run ``command`` with its output thrown away; return its wall time and its stderr.

    The CPU time of it and of every process below it goes to ``CPU[""]``.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault("", []).append(
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    )
    return wall, done.stderr


def timed(command: list[str], cwd: str, env: dict[str, str]) -> float:
    """The wall time of ``command`` (see :func:`finished`)."""
    return finished(command, cwd, env)[0]


def explained(command: list[str], cwd: str, env: dict[str, str]) -> str:
    """The explanations of ``command``, a jobstamp with ``--explain`` (see :func:`finished`)."""
    return finished(command, cwd, env)[1]


def ensure_hit(jobstamp: list[str], options: list[str], cwd: str, env: dict[str, str]) -> None:
    """Fail unless ``jobstamp OPTIONS`` replays now (run it once first if needed)."""
    for _ in range(2):
        said = explained([*jobstamp, "--explain", *options], cwd, env)
        if "jobstamp: replayed" in said:
            return
    raise BenchError(f"not a hit: {' '.join(options)}:\n{said}")


def traced_paths(said: str) -> int:
    """The number of paths a traced run said it stored."""
    for line in said.splitlines():
        if line.startswith("jobstamp: traced "):
            return int(line.split()[2])
    raise BenchError(f"the traced run stored no set:\n{said}")


def medians(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "median_ms": statistics.median(values) * 1000,
            "p10_ms": quantile(values, 0.1) * 1000,
            "p90_ms": quantile(values, 0.9) * 1000,
        }
        for name, values in samples.items()
    }


def take_turns(contenders: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Time each contender (a function returning seconds) once per round, in rotating order."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            samples[name].append(contenders[name]())
            CPU.setdefault(name, []).append(CPU.pop("", [0.0])[-1])
    return samples


def flake8_part(
    work: str, tools: str, jobstamp: list[str], env: dict[str, str], rounds: int
) -> dict[str, Any]:
    project = os.path.join(work, "flake8")
    os.makedirs(project)
    for name, text in (
        ("a.py", "import os\n\n\ndef f(x):\n    return x+1\n"),
        ("setup.cfg", "[flake8]\nmax-line-length = 100\n"),
    ):
        path = os.path.join(project, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        old = time.time() - 10 * RACY_WINDOW_S
        os.utime(path, (old, old))
    flake8 = os.path.join(tools, "flake8")
    untraced = ["--dependencies", "a.py", "setup.cfg", "--", flake8, "a.py"]
    traced = ["--trace", "--", flake8, "a.py"]
    count = traced_paths(explained([*jobstamp, "--explain", *traced], project, env))
    ensure_hit(jobstamp, untraced, project, env)
    ensure_hit(jobstamp, traced, project, env)
    samples = take_turns(
        {
            "untraced hit": lambda: timed([*jobstamp, *untraced], project, env),
            "traced hit": lambda: timed([*jobstamp, *traced], project, env),
            "flake8": lambda: timed([flake8, "a.py"], project, env),
            "traced run": lambda: timed([*jobstamp, "--force", *traced], project, env),
        },
        rounds,
    )
    found = medians(samples)
    return {
        "paths": count,
        "times": found,
        "hit_ratio": found["traced hit"]["median_ms"] / found["untraced hit"]["median_ms"],
        "run_ratio": found["traced run"]["median_ms"] / found["flake8"]["median_ms"],
    }


def copy_package(tools: str, env: dict[str, str], into: str) -> int:
    """Copy the .py files of the tools' mypy and mypyc packages into ``into``; count them."""
    done = subprocess.run(
        [
            os.path.join(tools, "python"),
            "-c",
            "import mypy, os; print(os.path.dirname(mypy.__path__[0]))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"mypy is not installed beside {tools}: {done.stderr.strip()}")
    site = done.stdout.strip()
    count = 0
    for package in ("mypy", "mypyc"):
        for top, dirs, files in os.walk(os.path.join(site, package)):
            dirs[:] = [d for d in dirs if d not in {"typeshed", "test", "test-data", "__pycache__"}]
            target = os.path.join(into, os.path.relpath(top, site))
            os.makedirs(target, exist_ok=True)
            for name in files:
                if name.endswith(".py"):
                    shutil.copy2(os.path.join(top, name), target)
                    count += 1
    return count


def mypy_part(
    work: str, tools: str, jobstamp: list[str], env: dict[str, str], rounds: int
) -> dict[str, Any]:
    project = os.path.join(work, "mypy")
    modules = copy_package(tools, env, project)
    mypy = [os.path.join(tools, "mypy"), "-p", "mypy", "-p", "mypyc"]
    cache = os.path.join(project, ".mypy_cache")

    def cold(command: list[str]) -> float:
        shutil.rmtree(cache, ignore_errors=True)
        return timed(command, project, env)

    traced = ["--trace", "--", *mypy]
    cold_samples = take_turns(
        {
            "mypy cold": lambda: cold(mypy),
            "traced cold": lambda: cold([*jobstamp, "--force", *traced]),
        },
        rounds,
    )
    count = traced_paths(explained([*jobstamp, "--explain", "--force", *traced], project, env))
    ensure_hit(jobstamp, traced, project, env)
    timed(mypy, project, env)  # its cache is warm now
    warm_samples = take_turns(
        {
            "mypy warm": lambda: timed(mypy, project, env),
            "traced hit": lambda: timed([*jobstamp, *traced], project, env),
        },
        max(rounds, 11),
    )
    found = medians({**cold_samples, **warm_samples})
    cpu = {name: statistics.median(CPU[name]) for name in ("mypy cold", "traced cold")}
    return {
        "modules": modules,
        "cold_cpu_s": cpu,
        "cold_cpu_ratio": cpu["traced cold"] / cpu["mypy cold"],
        "paths": count,
        "times": found,
        "cold_ratio": found["traced cold"]["median_ms"] / found["mypy cold"]["median_ms"],
        "warm_speedup": found["mypy warm"]["median_ms"] / found["traced hit"]["median_ms"],
    }


def remote_part(
    work: str, tools: str, jobstamp: list[str], env: dict[str, str], rounds: int
) -> dict[str, Any]:
    """Time mypy on a second machine: cold, and a traced hit filled from a warm remote."""
    from bench_remote import servers

    first = os.path.join(work, "mypy")  # made by mypy_part
    second = os.path.join(work, "mypy2")  # as deep: what is found above it is the same
    shutil.copytree(first, second, ignore=shutil.ignore_patterns(".mypy_cache", "__pycache__"))
    mypy = [os.path.join(tools, "mypy"), "-p", "mypy", "-p", "mypyc"]
    traced = ["--explain", "--trace", "--", *mypy]
    with servers(work) as urls:
        remote = {**env, "JOBSTAMPS_REMOTE": urls["http"]}
        said = explained([*jobstamp, "--force", *traced], first, remote)
        if "not uploaded" in said or "not stored" in said:
            raise BenchError(f"the first machine shared nothing:\n{said}")
        fresh = iter(range(1 << 30))

        def cold() -> float:
            shutil.rmtree(os.path.join(second, ".mypy_cache"), ignore_errors=True)
            return timed(mypy, second, env)

        def filled() -> float:
            cache = os.path.join(work, f"cache-second-{next(fresh)}")
            seconds, said = finished(
                [*jobstamp, *traced], second, {**remote, "JOBSTAMPS_CACHE_DIR": cache}
            )
            if "jobstamp: filled" not in said or "jobstamp: replayed" not in said:
                raise BenchError(f"not a traced hit from the remote:\n{said}")
            shutil.rmtree(cache)
            return seconds

        samples = take_turns({"mypy cold": cold, "remote hit": filled}, rounds)
    found = medians(samples)
    return {
        "times": found,
        "remote_ratio": found["remote hit"]["median_ms"] / found["mypy cold"]["median_ms"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("strace") is None:
        raise BenchError("strace is not on PATH; install it (apt-get install strace)")
    version = benchlib.import_jobstamps()
    import jobstamps

    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(jobstamps.__file__)))
    jobstamp = [sys.executable, "-m", "jobstamps"]
    results: dict[str, Any] = {"jobstamps": version, **benchlib.machine()}
    with benchlib.workdir("bench_trace", keep=args.keep) as work:
        env["JOBSTAMPS_CACHE_DIR"] = os.path.join(work, "cache")
        results["flake8"] = flake8_part(work, args.tools, jobstamp, env, args.rounds)
        results["mypy"] = mypy_part(work, args.tools, jobstamp, env, args.mypy_rounds)
        results["remote"] = remote_part(work, args.tools, jobstamp, env, args.mypy_rounds)
    results["load_average_end"] = benchlib.load_average()
    return results


def table(found: dict[str, Any]) -> str:
    """Render the results as a compact table."""
    flake8, mypy, remote = found["flake8"], found["mypy"], found["remote"]

    def row(name: str, times: dict[str, dict[str, float]]) -> str:
        figures = times[name]
        return (
            f"  {name:16}{figures['median_ms']:>10.1f} ms{figures['p10_ms']:>10.1f} ms"
            f"{figures['p90_ms']:>10.1f} ms"
        )

    def goal(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    lines = [
        f"jobstamps {found['jobstamps']}, " + benchlib.describe_machine(found),
        "",
        f"flake8 on one file (traced set: {flake8['paths']} paths)",
        f"  {'':16}{'median':>13}{'p10':>13}{'p90':>13}",
        *(row(name, flake8["times"]) for name in flake8["times"]),
        (
            f"  traced hit / untraced hit: {flake8['hit_ratio']:.2f}x (goal <= {FLAKE8_GOAL}x: "
            f"{goal(flake8['hit_ratio'] <= FLAKE8_GOAL)}); traced run / flake8: "
            f"{flake8['run_ratio']:.2f}x"
        ),
        "",
        (
            f"mypy over {mypy['modules']} modules of mypy and mypyc"
            f" (traced set: {mypy['paths']} paths)"
        ),
        *(row(name, mypy["times"]) for name in mypy["times"]),
        (
            f"  traced cold / mypy cold: {mypy['cold_ratio']:.2f}x (goal <= {COLD_GOAL}x: "
            f"{goal(mypy['cold_ratio'] <= COLD_GOAL)}); in CPU time "
            f"{mypy['cold_cpu_s']['traced cold']:.1f} s / {mypy['cold_cpu_s']['mypy cold']:.1f} s ="
            f" {mypy['cold_cpu_ratio']:.2f}x"
        ),
        (
            f"  mypy warm / traced hit: {mypy['warm_speedup']:.1f}x (goal >= {WARM_GOAL}x: "
            f"{goal(mypy['warm_speedup'] >= WARM_GOAL)})"
        ),
        "",
        "the same mypy run on a second machine, empty local cache, remote (nginx) warm",
        *(row(name, remote["times"]) for name in remote["times"]),
        (
            f"  remote hit / mypy cold: {remote['remote_ratio']:.1%} (goal <= "
            f"{REMOTE_GOAL:.0%}: {goal(remote['remote_ratio'] <= REMOTE_GOAL)})"
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", maxsplit=1)[0].replace("\n", " "), allow_abbrev=False
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--tools",
        default=os.path.dirname(sys.executable),
        metavar="DIR",
        help="where flake8, mypy and their python are (default: beside this Python)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    args.rounds = 7 if args.quick else 31
    args.mypy_rounds = 1 if args.quick else 5
    return benchlib.report("bench_trace", args, run, table)


if __name__ == "__main__":
    raise SystemExit(main())
