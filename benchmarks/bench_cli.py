"""Start-up cost of a cache hit of the installed ``jobstamp`` command, against bare Python.

Run from a checkout::

    python benchmarks/bench_cli.py             # full run, a table (about a minute)
    python benchmarks/bench_cli.py --quick     # a short run with fewer rounds
    python benchmarks/bench_cli.py --json      # the same figures as JSON on stdout
    python benchmarks/bench_cli.py --jobstamp ~/.local/bin/jobstamp   # an installed command

By default it installs this tree into a fresh temporary virtual environment (``python -m
venv``, then ``pip install``, which compiles the ``.pyc`` files as a user's install does) and
benchmarks that environment's ``bin/jobstamp``. ``--jobstamp PATH`` benchmarks an installed
command instead. Either way, the baseline runs the interpreter named in the command's shebang,
so both start the same Python with the same site-packages and ``.pth`` files.

It reports, in one run, the median time of:

1. ``python -c pass``, bare start-up of that interpreter;
2. ``true``, run directly (the cost of starting any process);
3. a cache hit of ``jobstamp --dependencies f01 ... f10 -- COMMAND``;
4. the same hit through ``python -m jobstamps``;
5. a miss, for context (``--no-miss`` leaves it out);

and the ratios hit / ``python -c pass`` (goal: at most 1.3x) and hit / ``true``. The
contenders take turns in each round, starting with a different one each round, so drift
(frequency scaling, other processes) hits all of them alike. The wrapped command appends a
line to a counter file, and ``--show-stats`` counts hits, so a round that was not a hit fails
the run. Then ``python -X importtime`` lists the modules a hit imports beyond those of
``python -c pass``, with their median cost.

Every cache lives in a temporary directory, removed at the end; the user's cache is never
touched. ``PYTHONDONTWRITEBYTECODE``, ``PYTHONPATH`` and the ``JOBSTAMPS_*`` settings are
removed from the environment of the timed processes.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import benchlib
from benchlib import RACY_WINDOW_S, BenchError, clean_env, quantile

HIT_GOAL = 1.3  # hit time / `python -c pass` time, at most
DEPENDENCIES = 10

BARE = "python -c pass"
TRUE = "true"
HIT = "jobstamp hit"
MODULE_HIT = "python -m jobstamps hit"
MISS = "jobstamp miss"
HITS = (HIT, MODULE_HIT)


# -- the command under test ------------------------------------------------------------------


def read_launcher(path: str) -> dict[str, Any]:
    """Describe the ``jobstamp`` file: its shebang, the interpreter it starts, its kind."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        raise BenchError(f"cannot read {path} ({error.strerror})") from None
    if not head.startswith(b"#!"):
        raise BenchError(f"{path} is not a script with a shebang; cannot tell which Python runs it")
    text = head.decode("utf-8", "replace")
    lines = text.splitlines()
    # As the kernel reads it: the interpreter, then at most one argument.
    interpreter = lines[0][2:].strip().split(None, 1)
    if not interpreter:
        raise BenchError(f"{path} has an empty shebang")
    kind = "pip console-script wrapper" if "sys.argv[0] = re.sub(" in text else "plain script"
    if os.path.basename(interpreter[0]) == "sh" and len(lines) > 1:
        # pip's trampoline for long or spaced interpreter paths: '''exec' "PYTHON" "$0" "$@"
        words = shlex.split(lines[1])
        if len(words) < 2 or words[0] != "exec":
            raise BenchError(f"{path} is a shell script; cannot tell which Python runs it")
        interpreter, kind = [words[1]], "sh trampoline to a " + kind
    elif os.path.basename(interpreter[0]) == "env" and len(interpreter) > 1:
        found = shutil.which(interpreter[1])
        if found is None or " " in interpreter[1]:
            raise BenchError(f"{path} runs '{interpreter[1]}' through env; give its path instead")
        interpreter = [found]
    imports_re = re.search(r"^\s*(import re\b|from re import)", text, re.MULTILINE) is not None
    return {
        "path": path,
        "shebang": lines[0],
        "interpreter": interpreter,
        "kind": kind,
        "imports_re": imports_re,
    }


def find_jobstamp(name: str) -> str:
    """Return the absolute path of the ``jobstamp`` command given as a path or a name."""
    found = name if os.sep in name else shutil.which(name)
    if found is None or not os.path.isfile(found):
        raise BenchError(f"no command {name}. Give the path of an installed jobstamp")
    if not os.access(found, os.X_OK):
        raise BenchError(f"{found} is not executable. Give the path of an installed jobstamp")
    return os.path.abspath(found)


def install(workdir: str, env: dict[str, str]) -> str:
    """Install this checkout into a new virtual environment; return its ``bin/jobstamp``."""
    try:
        bindir = benchlib.install(os.path.join(workdir, "venv"), env, who="bench_cli")
    except BenchError as error:
        raise BenchError(f"{error}, or pass --jobstamp PATH") from None
    return os.path.join(bindir, "jobstamp")


# -- the scene: dependency files, caches, commands -------------------------------------------


class Scene:
    """The files, caches and command lines every contender runs with."""

    def __init__(self, workdir: str, launcher: dict[str, Any], base_env: dict[str, str]) -> None:
        self.workdir = os.path.join(workdir, "work")
        os.mkdir(self.workdir)
        self.base_env = base_env
        self.jobstamp: str = launcher["path"]
        self.python: list[str] = launcher["interpreter"]
        self.deps = [os.path.join("deps", f"f{n:02d}") for n in range(1, DEPENDENCIES + 1)]
        os.mkdir(os.path.join(self.workdir, "deps"))
        old = time.time() - 10  # as old as a checkout's files
        for number, dep in enumerate(self.deps):
            path = os.path.join(self.workdir, dep)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(f"dependency {number}\n")
            os.utime(path, (old, old))
        self.counter = os.path.join(self.workdir, "runs")
        self.miss_counter = os.path.join(self.workdir, "miss-runs")
        self.caches = {
            name: os.path.join(workdir, "cache-" + name.replace(" ", "-"))
            for name in (*HITS, MISS, "importtime")
        }
        self.misses = 0
        self.true = shutil.which("true") or "/bin/true"
        if sys.platform == "win32" or not os.path.exists(self.true):
            raise BenchError("no 'true' command; this benchmark needs a POSIX system")

    def settle(self) -> None:
        """Wait until the dependency files are older than jobstamps' racy window.

        ``os.utime`` backdates the modification time but sets the change time to now, and
        jobstamps looks at both.
        """
        stats = [os.stat(os.path.join(self.workdir, dep)) for dep in self.deps]
        newest = max(max(st.st_mtime, st.st_ctime) for st in stats)
        wait = newest + RACY_WINDOW_S + 0.5 - time.time()
        if wait > 0:
            time.sleep(wait)

    def env(self, cache: str) -> dict[str, str]:
        """The environment of a timed process using cache ``cache``."""
        return {**self.base_env, "JOBSTAMPS_CACHE_DIR": self.caches[cache]}

    def wrapped(self, counter: str, *extra: str) -> list[str]:
        """The jobstamp arguments: the dependencies and a command that counts its runs."""
        script = f"echo x >> {shlex.quote(counter)}"
        return ["--dependencies", *self.deps, "--", "sh", "-c", script, *extra]

    def argv(self, name: str) -> list[str]:
        """The command line of contender ``name`` (a miss gets a new key each time)."""
        if name == TRUE:
            return [self.true]
        if name == BARE:
            return [*self.python, "-c", "pass"]
        if name == HIT:
            return [self.jobstamp, *self.wrapped(self.counter)]
        if name == MODULE_HIT:
            return [*self.python, "-m", "jobstamps", *self.wrapped(self.counter)]
        self.misses += 1
        return [self.jobstamp, *self.wrapped(self.miss_counter, "miss", str(self.misses))]

    def run(self, name: str) -> int:
        """Run contender ``name`` once, all streams on ``/dev/null``; return nanoseconds taken."""
        argv = self.argv(name)
        env = self.env(name) if name in self.caches else self.base_env
        start = time.perf_counter_ns()
        done = subprocess.run(
            argv,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter_ns() - start
        if done.returncode != 0:
            raise BenchError(f"{name} exited with status {done.returncode}: {shlex.join(argv)}")
        return elapsed

    def runs(self, counter: str) -> int:
        """How many times the wrapped command ran, as counted in ``counter``."""
        try:
            with open(counter, encoding="utf-8") as handle:
                return len(handle.readlines())
        except FileNotFoundError:
            return 0

    def hits_counted(self, cache: str) -> int:
        """The hit count ``jobstamp --show-stats`` gives for cache ``cache``."""
        done = subprocess.run(
            [self.jobstamp, "--show-stats"],
            cwd=self.workdir,
            env=self.env(cache),
            capture_output=True,
            text=True,
            check=False,
        )
        match = re.search(r"^hits\s+(\d+)\s*$", done.stdout, re.MULTILINE)
        if done.returncode != 0 or match is None:
            raise BenchError(f"cannot read the hit count from jobstamp --show-stats:\n{done}")
        return int(match.group(1))

    def version(self) -> tuple[str, str, str]:
        """The versions of jobstamps and of the interpreter, and the implementation's name."""
        done = subprocess.run(
            [self.jobstamp, "--version"],
            env=self.base_env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"{self.jobstamp} --version failed: {done.stderr.strip()}")
        code = "import platform; print(platform.python_version(), platform.python_implementation())"
        python = subprocess.run(
            [*self.python, "-c", code],
            env=self.base_env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        return done.stdout.split()[-1], python[0], python[1]


# -- timing ----------------------------------------------------------------------------------


def warm_up(scene: Scene, names: list[str]) -> None:
    """Record the hits (one miss, one settling hit each) and run every contender a few times."""
    scene.settle()
    for name in HITS:
        scene.run(name)  # a miss: records the entry
        scene.run(name)  # a hit that would refresh any fingerprint recorded as racy
    if scene.runs(scene.counter) != len(HITS):
        raise BenchError(
            "the warm-up hits ran the command; see why with: "
            f"JOBSTAMPS_CACHE_DIR={scene.caches[HIT]} {shlex.join(scene.argv(HIT))} "
            "--explain >/dev/null 2>&1 (run from the benchmark's directory)"
        )
    for _ in range(3):
        for name in names:
            scene.run(name)


def interleaved(scene: Scene, names: list[str], rounds: int) -> dict[str, list[float]]:
    """Time ``rounds`` rounds of every contender; return the milliseconds of each run."""
    samples: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(rounds):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(scene.run(name) / 1e6)
    return samples


def measure(scene: Scene, rounds: int, with_miss: bool) -> dict[str, Any]:
    """Warm up, time the interleaved rounds, and check every hit round was a hit."""
    names = [TRUE, BARE, HIT, MODULE_HIT, *([MISS] if with_miss else [])]
    warm_up(scene, names)
    runs_before = scene.runs(scene.counter)
    misses_before = scene.runs(scene.miss_counter)
    hits_before = {name: scene.hits_counted(name) for name in HITS}
    samples = interleaved(scene, names, rounds)
    command_runs = scene.runs(scene.counter) - runs_before
    hits = {
        name: {"rounds": rounds, "hits_counted": scene.hits_counted(name) - hits_before[name]}
        for name in HITS
    }
    all_hits = command_runs == 0 and all(h["hits_counted"] == rounds for h in hits.values())
    if not all_hits:
        raise BenchError(
            f"not every round was a hit: the command ran {command_runs} times, hits counted "
            + ", ".join(f"{name}: {h['hits_counted']}/{rounds}" for name, h in hits.items())
        )
    medians = {name: statistics.median(values) for name, values in samples.items()}

    ratios, paired_ratios = {}, {}
    for name in HITS:
        for base in (BARE, TRUE):
            ratios[f"{name} / {base}"] = medians[name] / medians[base]
            paired_ratios[f"{name} / {base}"] = statistics.median(
                a / b for a, b in zip(samples[name], samples[base], strict=True)
            )
        # The cost of starting any process taken out: what Python and jobstamps add.
        net = (medians[name] - medians[TRUE]) / (medians[BARE] - medians[TRUE])
        ratios[f"({name} - {TRUE}) / ({BARE} - {TRUE})"] = net
    result = {
        "dependencies": DEPENDENCIES,
        "rounds": rounds,
        "median_ms": medians,
        "p10_ms": {name: quantile(values, 0.1) for name, values in samples.items()},
        "p90_ms": {name: quantile(values, 0.9) for name, values in samples.items()},
        "ratios": ratios,
        "paired_ratios": paired_ratios,
        "goal": HIT_GOAL,
        "goal_met": ratios[f"{HIT} / {BARE}"] <= HIT_GOAL,
        "hits": {name: {**h, "command_runs": command_runs} for name, h in hits.items()},
        "all_hits": all_hits,
    }
    if with_miss:
        result["misses"] = {
            "rounds": rounds,
            "command_runs": scene.runs(scene.miss_counter) - misses_before,
        }
    return result


# -- where a hit's time goes -----------------------------------------------------------------


def import_times(scene: Scene, argv: list[str], cache: str) -> list[tuple[str, int, int, int]]:
    """Run ``argv`` under ``-X importtime``; return (module, depth, self us, cumulative us)."""
    python, rest = scene.python, argv[len(scene.python) :]
    done = subprocess.run(
        [*python, "-X", "importtime", *rest],
        cwd=scene.workdir,
        env=scene.env(cache),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} under -X importtime failed:\n{done.stderr}")
    modules = []
    for line in done.stderr.splitlines():
        match = re.fullmatch(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            depth = (len(match.group(3)) - 1) // 2
            modules.append((match.group(4), depth, int(match.group(1)), int(match.group(2))))
    return modules


def extra_imports(scene: Scene, runs: int) -> dict[str, Any]:
    """The modules each hit imports beyond ``python -c pass``, with median costs."""
    pass_argv = scene.argv(BARE)
    hit_argv = {HIT: [*scene.python, *scene.argv(HIT)], MODULE_HIT: scene.argv(MODULE_HIT)}
    # Standard error goes to a pipe here, which is part of the key: record that entry first.
    before = scene.runs(scene.counter)
    import_times(scene, hit_argv[HIT], "importtime")
    baseline: set[str] = set()
    seen: dict[str, list[list[tuple[str, int, int, int]]]] = {name: [] for name in hit_argv}
    for _ in range(runs):
        baseline.update(module for module, *_ in import_times(scene, pass_argv, "importtime"))
        for name, argv in hit_argv.items():
            seen[name].append(import_times(scene, argv, "importtime"))
    if scene.runs(scene.counter) != before + 1:
        raise BenchError("a hit under -X importtime ran the command; its imports are a miss's")
    result: dict[str, Any] = {"runs": runs, "baseline_modules": len(baseline)}
    for name, samples in seen.items():
        costs: dict[str, tuple[int, list[int], list[int]]] = {}
        for sample in samples:
            for module, depth, own, cumulative in sample:
                if module not in baseline:
                    entry = costs.setdefault(module, (depth, [], []))
                    entry[1].append(own)
                    entry[2].append(cumulative)
        modules = [
            {
                "module": module,
                "depth": depth,
                "self_us": statistics.median(own),
                "cumulative_us": statistics.median(cumulative),
            }
            for module, (depth, own, cumulative) in costs.items()
        ]
        result[name] = {
            "modules": modules,
            "self_total_us": sum(m["self_us"] for m in modules),
        }
    return result


# -- reporting -------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    """Render the results as a compact, human-readable table."""
    launcher, timing = results["launcher"], results["timing"]
    lines = [
        f"jobstamps {results['jobstamps']}, Python {results['python']} "
        f"({results['implementation']}), {benchlib.describe_machine(results)}"
        + (", quick run" if results["quick"] else ""),
        f"jobstamp     {launcher['path']}",
        f"  launcher   {launcher['kind']}"
        + (", imports re" if launcher["imports_re"] else ", does not import re"),
        f"  shebang    {launcher['shebang']}",
        f"  baseline   {shlex.join(launcher['interpreter'])} -c pass",
        "",
        (
            f"Medians of {timing['rounds']} interleaved rounds, {timing['dependencies']} "
            "dependency files, all streams on /dev/null"
        ),
        f"  {'':26}{'median':>10}{'p10':>10}{'p90':>10}",
    ]
    for name, median in timing["median_ms"].items():
        low, high = timing["p10_ms"][name], timing["p90_ms"][name]
        lines.append(f"  {name:26}{median:>7.2f} ms{low:>7.2f} ms{high:>7.2f} ms")
    runs = timing["hits"][HIT]["command_runs"]
    hits = ", ".join(f"{n} {h['hits_counted']}/{h['rounds']}" for n, h in timing["hits"].items())
    lines += [
        f"  hits counted: {hits}; wrapped command runs during them: {runs}",
        "",
        "Ratios of medians (median of the per-round ratios)",
    ]
    width = max(map(len, timing["ratios"]))
    for label, ratio in timing["ratios"].items():
        text = f"  {label:{width}}{ratio:>7.2f}x"
        if label in timing["paired_ratios"]:
            text += f" ({timing['paired_ratios'][label]:.2f}x)"
        if label.endswith(f"/ {BARE}"):
            verdict = "met" if ratio <= timing["goal"] else "MISSED"
            text += f"   goal <= {timing['goal']:g}x: {verdict}"
        lines.append(text)
    imports = results.get("imports")
    if imports:
        lines += [
            "",
            (
                f"Modules imported beyond those of {BARE} ({imports['baseline_modules']}), "
                f"medians of {imports['runs']} runs under -X importtime"
            ),
        ]
        for name in HITS:
            lines.append(f"  {name}: {imports[name]['self_total_us']:.0f} us of imports")
            lines.append(f"    {'module':36}{'self us':>9}{'cumul. us':>11}")
            for module in imports[name]["modules"]:
                label = "  " * module["depth"] + module["module"]
                lines.append(
                    f"    {label:36}{module['self_us']:>9.0f}{module['cumulative_us']:>11.0f}"
                )
    return "\n".join(lines)


def run(quick: bool, jobstamp: str | None, with_miss: bool, imports: bool) -> dict[str, Any]:
    """Install (unless given a command), measure, and return every figure."""
    workdir = tempfile.mkdtemp(prefix="jobstamps-bench-")
    try:
        env = clean_env()
        path = find_jobstamp(jobstamp) if jobstamp else install(workdir, env)
        launcher = read_launcher(path)
        launcher["installed_by_benchmark"] = jobstamp is None
        scene = Scene(workdir, launcher, env)
        version, python, implementation = scene.version()
        timing = measure(scene, rounds=15 if quick else 201, with_miss=with_miss)
        modules = extra_imports(scene, runs=3 if quick else 15) if imports else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "jobstamps": version,
        "python": python,
        "implementation": implementation,
        **benchlib.machine(),
        "quick": quick,
        "launcher": launcher,
        "timing": timing,
        "imports": modules,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON); return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="few rounds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--jobstamp",
        metavar="PATH",
        help="benchmark this installed jobstamp command instead of installing this checkout",
    )
    parser.add_argument("--no-miss", action="store_true", help="do not time misses")
    parser.add_argument(
        "--no-imports", action="store_true", help="do not list the modules a hit imports"
    )
    args = parser.parse_args(argv)
    return benchlib.report(
        "bench_cli",
        args,
        lambda args: run(args.quick, args.jobstamp, not args.no_miss, not args.no_imports),
        table,
    )


if __name__ == "__main__":
    raise SystemExit(main())
