"""The benchmark scripts run and report every figure; their speed is never asserted here."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


class QuickRun(NamedTuple):
    results: dict[str, Any]
    tmp: Path  # TMPDIR of the run
    env_cache: Path  # the cache its environment names, which it must not use


def run_script(name: str, tmp: Path, *args: str, **env: str) -> dict[str, Any]:
    """Run ``benchmarks/NAME ARGS --json`` with its temporary files in ``tmp`` (and ``env``
    added to its environment); return the results it printed."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp,
        env={**os.environ, "TMPDIR": str(tmp), **env},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    results: dict[str, Any] = json.loads(result.stdout)
    return results


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """Run ``bench_api.py --quick --json`` once, for all the tests of this module."""
    tmp = tmp_path_factory.mktemp("bench-tmp")
    env_cache = tmp_path_factory.mktemp("bench-env") / "jobstamps"
    results = run_script(
        "bench_api.py",
        tmp,
        "--quick",
        JOBSTAMPS_CACHE_DIR=str(env_cache),
        XDG_CACHE_HOME=str(env_cache.parent / "xdg"),
        # This checkout, not a copy installed beside the tests (module fixtures run before
        # the autouse isolated_cache sets PYTHONPATH).
        PYTHONPATH=str(BENCHMARKS.parent),
    )
    return QuickRun(results, tmp, env_cache)


def load_bench(name: str = "bench_api") -> Any:
    """Import ``benchmarks/NAME.py`` as a module."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))  # its ``import benchlib``, as when run as a script
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_api_reports_hits_and_misses(quick_run: QuickRun) -> None:
    api = quick_run.results["api"]
    contenders = {"jobstamp.run", "jobstamps.memoize", "joblib.Memory.cache", "functools.cache"}
    assert set(api["hit_us"]) == {*contenders, "no cache (runs the job)"}
    assert set(api["miss_us"]) == contenders
    assert set(api["ratio_joblib_over_jobstamps"]) == {"jobstamp.run", "jobstamps.memoize"}
    figures = [
        *api["hit_us"].values(),
        *api["miss_us"].values(),
        *api["ratio_joblib_over_jobstamps"].values(),
    ]
    assert all(isinstance(value, float) and value > 0 for value in figures), figures
    assert api["rounds"] > 0
    assert api["goal"] == 5.0
    assert isinstance(api["goal_met"], bool)
    # The dependency had settled before it was recorded: no hit hashed it.
    assert api["files_hashed_on_hits"] == 0


@pytest.mark.slow
def test_bench_api_reports_hits_of_a_small_call_with_ten_dependencies(
    quick_run: QuickRun,
) -> None:
    small = quick_run.results["small"]
    contenders = {"jobstamp.run", "jobstamps.memoize", "joblib.Memory.cache", "functools.cache"}
    if importlib.util.find_spec("diskcache") is not None:
        contenders.add("diskcache.memoize")
        assert small["diskcache"]
    else:
        assert small["diskcache"] == ""
    assert small["dependencies"] == 10
    for name in ("hit_us", "hit_p10_us", "hit_p90_us"):
        assert set(small[name]) == contenders
        assert all(isinstance(value, float) and value > 0 for value in small[name].values())
    assert all(
        small["hit_p10_us"][name] <= small["hit_us"][name] <= small["hit_p90_us"][name]
        for name in contenders
    )
    assert set(small["ratio_joblib_over_jobstamps"]) == {"jobstamp.run", "jobstamps.memoize"}
    assert small["goal"] == 5.0
    assert isinstance(small["goal_met"], bool)
    assert small["files_hashed_on_hits"] == 0  # the files had settled: hits stat them only
    text = load_bench().table(quick_run.results)
    assert "10 dependency files" in text
    assert "joblib / jobstamps.memoize" in text


@pytest.mark.slow
def test_bench_api_reports_hash_against_mtime(quick_run: QuickRun) -> None:
    deps = quick_run.results["dependencies"]
    assert deps["files"] == 1000
    assert deps["rounds"] > 0
    for name in ("hit_ms", "first_run_ms"):
        assert set(deps[name]) == {"mtime", "hash"}
        assert all(value > 0 for value in deps[name].values()), deps[name]
    assert deps["ratio_hash_over_mtime"] > 0
    assert deps["goal"] == 1.5
    assert isinstance(deps["goal_met"], bool)
    # A hash-mode hit does not read unchanged files again.
    assert deps["files_reread_on_hit"] == {"mtime": 0, "hash": 0}


@pytest.mark.slow
def test_bench_api_names_the_machine_and_cleans_up(quick_run: QuickRun) -> None:
    results = quick_run.results
    assert results["python"] == platform.python_version()
    assert results["cpu_count"] == os.cpu_count()
    assert results["quick"] is True
    assert results["jobstamps"]
    # The copy measured is named: this checkout's, as the test runs with it on PYTHONPATH.
    assert results["jobstamps_path"] == str(BENCHMARKS.parent / "jobstamps")
    assert results["joblib"]
    assert list(quick_run.tmp.iterdir()) == []  # its temporary directory is gone
    assert not quick_run.env_cache.exists()  # its caches were its own, not the one named


@pytest.mark.slow
def test_bench_api_table_shows_ratios_and_goals(quick_run: QuickRun) -> None:
    text = load_bench().table(quick_run.results)
    assert "Python " + platform.python_version() in text
    assert "joblib / jobstamp.run" in text
    assert "goal >= 5x: " in text
    assert "hash / mtime" in text
    assert "goal <= 1.5x: " in text
    assert "1,000 dependency files" in text


@pytest.mark.slow
def test_bench_cli_times_hits_of_the_installed_command(
    installed: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("bench-cli-tmp")
    jobstamp = installed / "jobstamp"
    results = run_script("bench_cli.py", tmp, "--quick", "--jobstamp", str(jobstamp))
    timing = results["timing"]
    contenders = {"true", "python -c pass", "jobstamp hit", "python -m jobstamps hit"}
    assert set(timing["median_ms"]) == {*contenders, "jobstamp miss"}
    assert all(value > 0 for value in timing["median_ms"].values()), timing["median_ms"]
    assert all(value > 0 for value in timing["ratios"].values()), timing["ratios"]
    # Every measured round was a hit: counted as one, and the wrapped command never ran.
    assert timing["rounds"] > 0
    assert timing["all_hits"] is True
    for name in ("jobstamp hit", "python -m jobstamps hit"):
        assert timing["hits"][name] == {
            "rounds": timing["rounds"],
            "hits_counted": timing["rounds"],
            "command_runs": 0,
        }
    # Every measured miss ran the command.
    assert timing["misses"] == {"rounds": timing["rounds"], "command_runs": timing["rounds"]}
    assert isinstance(timing["goal_met"], bool)
    # The baseline is the launcher's own interpreter, and the launcher is not pip's wrapper.
    launcher = results["launcher"]
    assert launcher["path"] == str(jobstamp)
    assert Path(launcher["interpreter"][0]).parent == installed
    assert launcher["kind"] == "plain script"
    assert launcher["imports_re"] is False
    # A hit imports none of the modules that make start-up slow.
    imported = {m["module"] for m in results["imports"]["jobstamp hit"]["modules"]}
    assert "jobstamps.cli" in imported
    assert not imported & {"re", "enum", "argparse", "subprocess", "tempfile", "pathlib"}
    assert list(tmp.iterdir()) == []  # its temporary directory is gone


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cppcheck") is None, reason="cppcheck is not installed")
def test_bench_perfile_times_cppcheck_through_cmake(
    installed: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("bench-perfile-tmp")
    options = ["--skip-django", "--cmake-rounds", "2", "--venv", str(installed.parent)]
    cmake = run_script("bench_perfile.py", tmp, *options)["cmake"]
    assert cmake["rounds"] == 2
    assert set(cmake["median_s"]) == {
        "unwrapped",
        "empty cache",
        "nothing changed",
        "one file edited",
    }
    assert all(value > 0 for value in cmake["median_s"].values()), cmake["median_s"]
    # Each wrapped build replayed the unwrapped one's finding and failure, and checked only
    # what it had to.
    assert (cmake["exit_status"], cmake["messages"]) != (0, 0)
    assert cmake["replayed_and_run"] == {
        "empty cache": {"replayed": 0, "run": cmake["files"]},
        "nothing changed": {"replayed": cmake["files"], "run": 0},
        "one file edited": {"replayed": cmake["files"] - 1, "run": 1},
    }
    assert list(tmp.iterdir()) == []  # its temporary directory is gone


def test_bench_store_writes_results_one_file_each_and_in_one_pack(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("bench-store-tmp")
    found = run_script("bench_store.py", tmp, "--results", "40", "--rounds", "2")
    assert (found["results"], found["rounds"]) == (40, 2)
    ways = found["ways"]
    assert (ways["one file each"]["files"], ways["one batch"]["files"]) == (40, 1)
    assert all(ways[way][step]["median_ms"] > 0 for way in ways for step in ("write", "read"))
    assert found["write_ratio"] > 0
    assert list(tmp.iterdir()) == []  # its temporary directory is gone


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_bench_trace_times_traced_hits_and_cold_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("bench-trace-tmp")
    found = run_script("bench_trace.py", tmp, "--quick", PYTHONPATH=str(BENCHMARKS.parent))
    flake8, mypy = found["flake8"], found["mypy"]
    assert flake8["paths"] > 0
    assert set(flake8["times"]) == {"untraced hit", "traced hit", "flake8", "traced run"}
    assert mypy["modules"] > 100
    assert set(mypy["times"]) == {"mypy cold", "traced cold", "mypy warm", "traced hit"}
    assert all(figures["median_ms"] > 0 for figures in mypy["times"].values())
    assert flake8["hit_ratio"] > 0
    assert mypy["warm_speedup"] > 0
    assert set(found["remote"]["times"]) == {"mypy cold", "remote hit"}
    assert found["remote"]["remote_ratio"] > 0
    assert list(tmp.iterdir()) == []  # its temporary directory is gone


def test_bench_perfile_times_the_traced_hook_and_checks_its_goals() -> None:
    perfile = load_bench("bench_perfile")
    hook = perfile.with_options(
        {"id": "jobstamp-flake8", "args": ["--max-line-length=88", "--"]}, ["--trace"]
    )
    assert hook["args"] == ["--max-line-length=88", "--jobstamps--", "--trace", "--"]
    wrapped = {"": ["wrapped"], perfile.TRACED: ["traced"]}
    contest = perfile.Contest(None, ".", ["unwrapped"], wrapped, lambda _: None)
    assert contest.steps == [
        "empty cache",
        "nothing changed",
        "one file edited",
        "traced empty cache",
        "traced nothing changed",
        "traced one file edited",
    ]
    seconds = dict(
        zip(["unwrapped", *contest.steps], [10.0, 9.0, 0.2, 0.3, 13.0, 0.4, 0.5], strict=True)
    )
    contest.samples = {name: [value] for name, value in seconds.items()}
    contest.files = {name: [(0, 5)] for name in contest.steps}
    contest.reference = (1, ["a.py:1:1: F401"])
    part = contest.summary()
    assert part["ratio"]["traced empty cache"] == pytest.approx(1.3)
    rows = {
        line.split("  ")[1].strip(): line
        for line in perfile.contest_lines(part, perfile.GOALS)[1:-1]
    }
    assert "1.30x" in rows["traced empty cache"]
    assert "goal <= 1.4x: met" in rows["traced empty cache"]
    assert "4.0%" in rows["traced nothing changed"]
    assert "goal <= 3.0%: MISSED" in rows["traced nothing changed"]
    assert "goal" not in rows["traced one file edited"]
    assert "goal <= 2.5%: met" in rows["nothing changed"]
