"""Per-file caching against the unwrapped checker: flake8 over Django through pre-commit, and
cppcheck over a generated C project through CMake.

Run from a checkout::

    python benchmarks/bench_perfile.py                  # full run, a table (about 15 minutes)
    python benchmarks/bench_perfile.py --rounds 3       # fewer rounds of the Django part
    python benchmarks/bench_perfile.py --json           # the same figures as JSON on stdout
    python benchmarks/bench_perfile.py --skip-django    # only the CMake part (no download)

By default it installs this tree, flake8 and pre-commit into a fresh temporary virtual
environment; ``--venv DIR`` uses an existing one that has all three instead.

Django: it fetches Django 5.2's source distribution from the package index (``pip download``
into ``--download-dir``, kept between runs), unpacks it into a throwaway git repository with
a flake8 configuration like Django's own (``.flake8``: ``max-line-length = 88``,
``extend-ignore = E203``), commits it, and times ``pre-commit run --all-files`` with three
configurations: flake8 unwrapped (a ``language: system`` hook), flake8 through the
``jobstamp-flake8`` hook of this tree's ``.pre-commit-hooks.yaml`` (its entry and arguments,
with ``language: system``, so that it runs the jobstamps under test), and the same hook with
``--trace`` (what a batch read outside its own files becomes a dependency of each of its
files). Each round times the unwrapped hook once and each wrapped one three times: with an
empty cache, with nothing changed, and after one file was edited. Goals: empty cache <= 1.3x
unwrapped, nothing changed <= 2.5% of unwrapped, one file edited <= 5%; with ``--trace``,
empty cache <= 1.4x, nothing changed <= 3%.

CMake: a C project of a few dozen files with a target that runs cppcheck on all of them
(unwrapped: a plain custom target, which runs on every build) and a
``jobstamps_add_command(... PER_FILE ...)`` target with the same command, timed as a no-op
build, after one file was edited, and with an empty cache.

The outputs are checked, not assumed: the wrapped runs must print the same messages as the
unwrapped ones and exit with the same status, and the cache's hit and miss counts say how many
files each wrapped run replayed and checked. Every cache, the repository and the environment
live in a temporary directory that is removed at the end (``--keep`` keeps it); your own
jobstamps and pre-commit caches are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from typing import TYPE_CHECKING, Any

import benchlib
from benchlib import RACY_WINDOW_S, BenchError, clean_env, quantile

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

GOALS = {
    "empty cache": 1.3,
    "nothing changed": 0.025,
    "one file edited": 0.05,
    "traced empty cache": 1.4,
    "traced nothing changed": 0.03,
}
DJANGO = "django==5.2.*"
FLAKE8_CONFIG = "[flake8]\nextend-ignore = E203\nmax-line-length = 88\n"
EDITED = "django/utils/text.py"
C_FILES = 40
C_REPEATS = 8  # groups of four functions per C file
UNWRAPPED = "unwrapped"
STEPS = ("empty cache", "nothing changed", "one file edited")
#: The steps of the Django hook with ``--trace``: what a batch read outside its own files
#: becomes a dependency of each of its files.
TRACED = "traced "
#: In a hook's args, what follows this are jobstamps options (jobstamps.precommit.OPTIONS_MARK).
OPTIONS_MARK = "--jobstamps--"
MESSAGE = re.compile(r"^\S+:\d+:\d+: ")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def say(message: str) -> None:
    """Report progress on stderr."""
    print(f"bench_perfile: {message}", file=sys.stderr, flush=True)


def run_quiet(command: list[str], env: dict[str, str], cwd: str | None = None) -> str:
    """Run a set-up step; return its output, or fail the benchmark with its last lines."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BenchError(f"{' '.join(command[:4])} ... failed:\n{tail}")
    return done.stdout


def tool_versions(python: str, env: dict[str, str]) -> dict[str, str]:
    """The versions of jobstamps and Python that ``python`` runs."""
    code = "import platform, jobstamps; print(jobstamps.__version__, platform.python_version())"
    version, release = run_quiet([python, "-c", code], env).split()
    return {"jobstamps": version, "python": release}


# -- the scene: an environment, a cache, and timed commands -------------------------------------


class Scene:
    """The environment every timed command runs in, and the cache the wrapped ones use."""

    def __init__(self, workdir: str, bindir: str) -> None:
        self.workdir = workdir
        self.bindir = bindir
        self.cache = os.path.join(workdir, "jobstamps-cache")
        path = os.pathsep.join([bindir, os.environ.get("PATH", os.defpath)])
        self.env = {
            **clean_env(),
            **GIT_ENV,
            "PATH": path,
            "JOBSTAMPS_CACHE_DIR": self.cache,
            "PRE_COMMIT_HOME": os.path.join(workdir, "pre-commit-home"),
            "HOME": os.path.join(workdir, "home"),
        }
        os.makedirs(self.env["HOME"])
        self.tool("python")
        self.tool("jobstamp")

    def tool(self, name: str) -> str:
        """The path of a command of the environment under test; fail if it has none."""
        path = os.path.join(self.bindir, name)
        if not os.path.isfile(path):
            raise BenchError(f"{self.bindir} has no {name}. Install jobstamps, flake8, pre-commit")
        return path

    def timed(self, command: list[str], cwd: str) -> tuple[float, int, str]:
        """Run ``command``; return the seconds it took, its status and its output."""
        start = time.perf_counter()
        done = subprocess.run(
            command,
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        elapsed = time.perf_counter() - start
        return elapsed, done.returncode, done.stdout.decode("utf-8", "replace")

    def clear_cache(self) -> None:
        """Remove the cache of the wrapped runs, as on a fresh machine."""
        shutil.rmtree(self.cache, ignore_errors=True)

    def counts(self) -> tuple[int, int, int]:
        """The hits and misses the cache has counted, and the results it holds."""
        if not os.path.isdir(self.cache):
            return 0, 0, 0
        text = run_quiet([self.tool("jobstamp"), "--show-stats"], self.env)
        names = ("hits", "misses", "results")
        found = dict(re.findall(r"^(hits|misses|results)\s+(\d+)\b", text, re.MULTILINE))
        if set(found) != set(names):
            raise BenchError(f"cannot read {', '.join(names)} from jobstamp --show-stats:\n{text}")
        return int(found["hits"]), int(found["misses"]), int(found["results"])


class Contest:
    """A checker timed unwrapped and through jobstamps, in interleaved rounds."""

    def __init__(
        self,
        scene: Scene,
        cwd: str,
        unwrapped: list[str],
        wrapped: dict[str, list[str]],
        edit: Callable[[int], None],
    ) -> None:
        """``wrapped`` maps a prefix of step names (``""`` for the plain hook) to a command,
        timed at each of the ``STEPS``."""
        self.scene = scene
        self.cwd = cwd
        self.steps = [prefix + step for prefix in wrapped for step in STEPS]
        self.commands = {
            UNWRAPPED: unwrapped,
            **{prefix + step: command for prefix, command in wrapped.items() for step in STEPS},
        }
        self.edit = edit
        self.samples: dict[str, list[float]] = {name: [] for name in self.commands}
        self.files: dict[str, list[tuple[int, int]]] = {name: [] for name in self.steps}
        self.reference: tuple[int, list[str]] | None = None
        self.edits = 0

    def run(self, name: str) -> None:
        """Time one run of ``name`` and check its output against the unwrapped checker's."""
        empty = name.endswith("empty cache")
        if empty:
            self.scene.clear_cache()
        if name.endswith("one file edited"):
            self.edits += 1
            self.edit(self.edits)
        before = self.scene.counts()
        seconds, code, output = self.scene.timed(self.commands[name], self.cwd)
        hits, misses, results = (a - b for a, b in zip(self.scene.counts(), before, strict=True))
        if empty:  # counts made before the cache directory existed are lost
            misses = results
        messages = sorted(line for line in output.splitlines() if MESSAGE.match(line))
        if name == UNWRAPPED or self.reference is None:
            self.reference = (code, messages)
        elif (code, messages) != self.reference:
            raise BenchError(
                f"the wrapped run ({name}) gave exit status {code} and {len(messages)} messages; "
                f"the unwrapped one {self.reference[0]} and {len(self.reference[1])}:\n{output}"
            )
        self.samples[name].append(seconds)
        if name in self.files:
            self.files[name].append((hits, misses))

    def rounds(self, rounds: int, what: str) -> dict[str, Any]:
        """Warm up, then time ``rounds`` rounds; the unwrapped run takes a new place each round."""
        self.run(UNWRAPPED)  # warms the disk cache and any compiled files up
        for name in self.steps:
            self.run(name)
        self.samples = {name: [] for name in self.commands}
        self.files = {name: [] for name in self.steps}
        for turn in range(rounds):
            say(f"{what}: round {turn + 1} of {rounds}")
            order: list[str] = list(self.steps)
            order.insert(turn % (len(self.steps) + 1), UNWRAPPED)
            for name in order:
                self.run(name)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Medians, 10th and 90th percentiles, ratios to the unwrapped median, files run."""
        medians = {name: statistics.median(values) for name, values in self.samples.items()}
        base = medians[UNWRAPPED]
        assert self.reference is not None  # noqa: S101 - set by the first run
        return {
            "rounds": len(self.samples[UNWRAPPED]),
            "median_s": medians,
            "p10_s": {name: quantile(values, 0.1) for name, values in self.samples.items()},
            "p90_s": {name: quantile(values, 0.9) for name, values in self.samples.items()},
            "ratio": {name: medians[name] / base for name in self.steps},
            # The worst round: fewest files replayed, most checked.
            "replayed_and_run": {
                name: {"replayed": min(h for h, _ in pairs), "run": max(m for _, m in pairs)}
                for name, pairs in self.files.items()
            },
            "exit_status": self.reference[0],
            "messages": len(self.reference[1]),
        }


def settle() -> None:
    """Wait until the files written so far are older than jobstamps' racy window, as a
    checkout's files are."""
    time.sleep(RACY_WINDOW_S + 0.5)


# -- Django through pre-commit -------------------------------------------------------------------


def fetch_django(scene: Scene, download_dir: str) -> str:
    """Return the path of Django 5.2's sdist in ``download_dir``, downloading it if missing."""
    os.makedirs(download_dir, exist_ok=True)

    def version(name: str) -> list[int]:
        return [int(part) for part in re.findall(r"\d+", name)]

    def found() -> list[str]:
        pattern = r"[Dd]jango-5\.2(\.\d+)*\.tar\.gz"
        return sorted(
            (n for n in os.listdir(download_dir) if re.fullmatch(pattern, n)), key=version
        )

    if not found():
        say(f"downloading {DJANGO} (source distribution) into {download_dir}")
        command = [scene.tool("python"), "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--no-binary", ":all:", "--disable-pip-version-check", "-d", download_dir]
        run_quiet([*command, DJANGO], scene.env)
    names = found()
    if not names:
        raise BenchError(f"pip download left no Django 5.2 sdist in {download_dir}")
    return os.path.join(download_dir, names[-1])


def jobstamp_flake8_hook(scene: Scene, *options: str) -> dict[str, Any]:
    """The ``jobstamp-flake8`` hook of this tree, made a ``language: system`` hook, with
    jobstamps ``options`` added to its args after ``--jobstamps--``."""
    hooks_file = os.path.join(benchlib.REPO, ".pre-commit-hooks.yaml")
    code = (
        "import json, sys, yaml\n"
        "hooks = {h['id']: h for h in yaml.safe_load(open(sys.argv[1], encoding='utf-8'))}\n"
        "print(json.dumps(hooks['jobstamp-flake8']))\n"
    )
    hook: dict[str, Any] = json.loads(
        run_quiet([scene.tool("python"), "-c", code, hooks_file], scene.env)
    )
    keep = ("id", "name", "entry", "args", "types", "require_serial")
    return with_options({**{k: hook[k] for k in keep if k in hook}, "language": "system"}, options)


def with_options(hook: dict[str, Any], options: Sequence[str]) -> dict[str, Any]:
    """``hook`` with jobstamps ``options`` given in its args, after ``--jobstamps--``."""
    if not options:
        return hook
    args = hook.get("args", ["--"])
    if args[-1:] != ["--"] or OPTIONS_MARK in args:
        raise BenchError(f"cannot add {' '.join(options)} to the hook's args {args}")
    return {**hook, "args": [*args[:-1], OPTIONS_MARK, *options, "--"]}


def django_repository(scene: Scene, sdist: str) -> tuple[str, int]:
    """Unpack ``sdist`` into a new git repository with the pre-commit configurations to time.

    Returns the repository and the number of Python files pre-commit will pass to flake8.
    """
    unpacked = os.path.join(scene.workdir, "unpacked")
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(unpacked, filter="data")
        else:  # Python without extraction filters: the archive comes from the package index
            archive.extractall(unpacked)  # noqa: S202
    (top,) = os.listdir(unpacked)
    repo = os.path.join(scene.workdir, "django")
    os.rename(os.path.join(unpacked, top), repo)
    with open(os.path.join(repo, ".flake8"), "w", encoding="utf-8") as handle:
        handle.write(FLAKE8_CONFIG)
    flake8 = {"id": "flake8", "name": "flake8", "entry": "flake8", "language": "system"}
    configs = {
        "unwrapped.yaml": {**flake8, "types": ["python"]},
        "wrapped.yaml": jobstamp_flake8_hook(scene),
        "traced.yaml": jobstamp_flake8_hook(scene, "--trace"),
    }
    for name, hook in configs.items():
        # JSON is YAML: pre-commit reads it as it is.
        config = {"repos": [{"repo": "local", "hooks": [hook]}]}
        with open(os.path.join(repo, name), "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)
    run_quiet(["git", "init", "--quiet"], scene.env, cwd=repo)
    run_quiet(["git", "add", "--all"], scene.env, cwd=repo)
    run_quiet(
        ["git", "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "Django"],
        scene.env,
        cwd=repo,
    )
    listed = run_quiet(["git", "ls-files", "*.py"], scene.env, cwd=repo)
    return repo, len(listed.splitlines())


def bench_django(scene: Scene, download_dir: str, rounds: int) -> dict[str, Any]:
    """Time flake8 over Django through pre-commit, unwrapped and through the hook."""
    sdist = fetch_django(scene, download_dir)
    repo, files = django_repository(scene, sdist)
    settle()

    def edit(number: int) -> None:
        with open(os.path.join(repo, EDITED), "a", encoding="utf-8") as handle:
            handle.write(f"# edited by bench_perfile, round {number}\n")

    def pre_commit(config: str) -> list[str]:
        return [scene.tool("pre-commit"), "run", "--all-files", "--color", "never", "-c", config]

    wrapped = {"": pre_commit("wrapped.yaml"), TRACED: pre_commit("traced.yaml")}
    untraced = "" if shutil.which("strace", path=scene.env["PATH"]) else "strace not found"
    if untraced:  # jobstamp --trace would run flake8 without the cache
        del wrapped[TRACED]
    contest = Contest(scene, repo, pre_commit("unwrapped.yaml"), wrapped, edit)
    say(f"Django: timing pre-commit over {files} *.py files and the like, {rounds} rounds")
    result = contest.rounds(rounds, "Django")
    versions = run_quiet([scene.tool("python"), "-m", "pip", "list", "--format", "json"], scene.env)
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(versions)}
    return {
        **result,
        "sdist": os.path.basename(sdist),
        "python_files": files,
        "flake8": installed.get("flake8", "?"),
        "pre_commit": installed.get("pre-commit", "?"),
        "goals": GOALS,
        "goals_met": {
            name: result["ratio"][name] <= goal
            for name, goal in GOALS.items()
            if name in result["ratio"]
        },
        "traced_skipped": untraced,
    }


# -- cppcheck through CMake ---------------------------------------------------------------------

C_HEADER = """\
#ifndef COMMON_H
#define COMMON_H
#include <stddef.h>
struct buffer {
    char *data;
    size_t length;
    size_t capacity;
};
int buffer_push(struct buffer *buffer, char value);
#endif
"""

C_INCLUDES = """\
#include <stdlib.h>
#include <string.h>
#include "common.h"
"""

#: Repeated with other names to make a unit of a few hundred lines.
C_FUNCTIONS = """
static int checksum_{n}(const char *text, size_t length)
{{
    int sum = 0;
    for (size_t i = 0; i < length; ++i) {{
        sum = (sum * 31 + text[i]) % 65521;
    }}
    return sum;
}}

int copy_{n}(struct buffer *out, const char *text)
{{
    size_t length = strlen(text);
    for (size_t i = 0; i < length; ++i) {{
        if (buffer_push(out, text[i]) != 0) {{
            return -1;
        }}
    }}
    return checksum_{n}(out->data, out->length);
}}

int table_{n}(int index)
{{
    static const int values[8] = {{1, 2, 3, 5, 8, 13, 21, 34}};
    if (index < 0 || index >= 8) {{
        return 0;
    }}
    return values[index];
}}

char *join_{n}(const char *left, const char *right)
{{
    size_t a = strlen(left), b = strlen(right);
    char *joined = malloc(a + b + 1);
    if (joined == NULL) {{
        return NULL;
    }}
    memcpy(joined, left, a);
    memcpy(joined + a, right, b + 1);
    return joined;
}}
"""

#: One unit has a finding, so that the build fails and the failure is what gets replayed.
C_FINDING = """
int overrun(void)
{
    int values[2] = {0, 1};
    return values[2];
}
"""

CMAKELISTS = """\
cmake_minimum_required(VERSION 3.15)
project(bench_perfile LANGUAGES NONE)
find_package(Jobstamps 1.0 CONFIG REQUIRED)
include(JobstampsWrap)

file(GLOB sources RELATIVE "${CMAKE_CURRENT_SOURCE_DIR}" CONFIGURE_DEPENDS src/*.c)
set(cppcheck "${CPPCHECK}" --quiet --error-exitcode=1 --template=gcc --enable=warning -I include)
add_custom_target(
  cppcheck_unwrapped
  COMMAND ${cppcheck} ${sources}
  WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}"
  VERBATIM)
jobstamps_add_command(
  cppcheck_per_file PER_FILE
  SOURCES ${sources}
  COMMAND ${cppcheck}
  DEPENDS include/common.h)
"""


def c_repository(scene: Scene) -> str:
    """Write the C project and its CMakeLists.txt; return its directory."""
    root = os.path.join(scene.workdir, "c-project")
    os.makedirs(os.path.join(root, "src"))
    os.makedirs(os.path.join(root, "include"))
    files = {"CMakeLists.txt": CMAKELISTS, "include/common.h": C_HEADER}
    for n in range(C_FILES):
        parts = [C_FUNCTIONS.format(n=f"{n}_{k}") for k in range(C_REPEATS)]
        files[f"src/unit{n:02d}.c"] = "".join([C_INCLUDES, *parts, C_FINDING if n == 7 else ""])
    for name, text in files.items():
        with open(os.path.join(root, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    return root


def bench_cmake(scene: Scene, rounds: int) -> dict[str, Any]:
    """Time cppcheck over the C project through CMake, unwrapped and per file."""
    cmake = shutil.which("cmake", path=scene.env["PATH"])
    cppcheck = shutil.which("cppcheck", path=scene.env["PATH"])
    if cmake is None or cppcheck is None:
        missing = " and ".join(n for n, p in (("cmake", cmake), ("cppcheck", cppcheck)) if not p)
        return {"skipped": f"{missing} not found on PATH"}
    ninja = shutil.which("ninja", path=scene.env["PATH"])
    generator = "Ninja" if ninja else "Unix Makefiles"
    root = c_repository(scene)
    build = os.path.join(scene.workdir, "c-build")
    cmake_dir = run_quiet([scene.tool("jobstamp"), "--cmake-dir"], scene.env).strip()
    configure = [cmake, "-S", root, "-B", build, "-G", generator, f"-DCPPCHECK={cppcheck}"]
    run_quiet([*configure, f"-DJobstamps_DIR={cmake_dir}"], scene.env)
    settle()

    def edit(number: int) -> None:
        with open(os.path.join(root, "src", "unit03.c"), "a", encoding="utf-8") as handle:
            handle.write(f"/* edited by bench_perfile, round {number} */\n")

    def target(name: str) -> list[str]:
        return [cmake, "--build", build, "--target", name]

    per_file = {"": target("cppcheck_per_file")}
    contest = Contest(scene, root, target("cppcheck_unwrapped"), per_file, edit)
    say(f"CMake: timing cppcheck over {C_FILES} C files, {rounds} rounds")
    result = contest.rounds(rounds, "CMake")
    version = run_quiet([cppcheck, "--version"], scene.env).strip()
    return {**result, "files": C_FILES, "generator": generator, "cppcheck": version}


# -- reporting -----------------------------------------------------------------------------------


def contest_lines(part: dict[str, Any], goals: dict[str, float] | None) -> list[str]:
    """The table rows of one contest: medians, percentiles, ratios, files replayed and run."""
    lines = [f"  {'':24}{'median':>10}{'p10':>10}{'p90':>10}{'vs unwrapped':>14}  files"]
    for name, median in part["median_s"].items():
        row = (
            f"  {name:24}{median:>8.2f} s{part['p10_s'][name]:>8.2f} s{part['p90_s'][name]:>8.2f} s"
        )
        if name in part["ratio"]:
            ratio = part["ratio"][name]
            empty = name.endswith("empty cache")
            shown = f"{ratio:.2f}x" if empty else f"{ratio:.1%}"
            files = part["replayed_and_run"][name]
            row += f"{shown:>14}  {files['replayed']} replayed, {files['run']} checked"
            if goals and name in goals:
                goal = goals[name]
                limit = f"{goal:g}x" if empty else f"{goal:.1%}"
                row += f"   goal <= {limit}: {'met' if ratio <= goal else 'MISSED'}"
        lines.append(row)
    lines.append(
        f"  every wrapped run printed the unwrapped run's {part['messages']} messages and "
        f"exit status {part['exit_status']}"
    )
    return lines


def table(results: dict[str, Any]) -> str:
    """Render the results as a compact, human-readable table."""
    lines = [
        f"jobstamps {results['jobstamps']}, Python {results['python']}, "
        + benchlib.describe_machine(results),
    ]
    django = results.get("django")
    if django:
        lines += [
            "",
            (
                f"flake8 {django['flake8']} over {django['sdist']} ({django['python_files']} "
                f"*.py files) through pre-commit {django['pre_commit']}: medians of "
                f"{django['rounds']} rounds"
            ),
            *contest_lines(django, django["goals"]),
        ]
        if django.get("traced_skipped"):
            lines.append(f"  --trace rows skipped: {django['traced_skipped']} on PATH")
    cmake = results.get("cmake")
    if cmake and "skipped" in cmake:
        lines += ["", f"CMake part skipped: {cmake['skipped']}"]
    elif cmake:
        lines += [
            "",
            (
                f"{cmake['cppcheck']} over {cmake['files']} C files through CMake "
                f"({cmake['generator']}): medians of {cmake['rounds']} rounds"
            ),
            *contest_lines(cmake, None),
        ]
    return "\n".join(lines)


def environment(workdir: str, venv: str | None) -> str:
    """The scripts directory of the environment under test, installing one if not given."""
    if venv is not None:
        return benchlib.bin_dir(os.path.abspath(venv))
    return benchlib.install(
        os.path.join(workdir, "venv"), clean_env(), "flake8", "pre-commit", who="bench_perfile"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, measure, and return every figure."""
    results: dict[str, Any] = {**benchlib.machine()}
    with benchlib.workdir("bench_perfile", keep=args.keep) as workdir:
        scene = Scene(workdir, environment(workdir, args.venv))
        results.update(tool_versions(scene.tool("python"), scene.env))
        if not args.skip_django:
            results["django"] = bench_django(scene, args.download_dir, args.rounds)
        if not args.skip_cmake:
            results["cmake"] = bench_cmake(scene, args.cmake_rounds)
        results["load_average_end"] = benchlib.load_average()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON); return the exit status."""
    parser = benchlib.django_parser(__doc__, 5, "flake8 and pre-commit")
    parser.add_argument(
        "--cmake-rounds",
        type=benchlib.positive,
        default=15,
        metavar="N",
        help="rounds of the CMake part (15)",
    )
    parser.add_argument("--skip-django", action="store_true", help="leave the Django part out")
    parser.add_argument("--skip-cmake", action="store_true", help="leave the CMake part out")
    args = parser.parse_args(argv)
    return benchlib.report("bench_perfile", args, run, table)


if __name__ == "__main__":
    raise SystemExit(main())
