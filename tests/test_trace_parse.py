"""Turning strace logs into paths: table-driven over lines as ``strace -f -y -xx`` writes them.

In the tables a name between braces stands for its hexadecimal form (``{/w}`` is
``\\x2f\\x77``), as ``-xx`` prints every string and every descriptor's path.
"""

from __future__ import annotations

import re

import pytest

from jobstamps.trace.parse import Access, Ignore, parse, unescape


def hexed(line: str) -> str:
    return re.sub(r"\{([^}]*)\}", lambda m: "".join(f"\\x{b:02x}" for b in m[1].encode()), line)


def traced(*lines: str, cwd: str = "/w") -> Access:
    return parse([hexed(line) + "\n" for line in lines], cwd)


CASES = [
    (
        "a file opened for reading, relative to the working directory",
        ['10 openat(AT_FDCWD<{/w}>, "{src/a.py}", O_RDONLY|O_CLOEXEC) = 3<{/w/src/a.py}>'],
        {"read": ["/w/src/a.py"]},
    ),
    (
        "a file opened for writing is changed, not read",
        ['10 openat(AT_FDCWD<{/w}>, "{o}", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3<{/w/o}>'],
        {"read": [], "changed": ["/w/o"]},
    ),
    (
        "failed look-ups that find nothing must stay absent; other failures are not recorded",
        [
            (
                '10 openat(AT_FDCWD<{/w}>, "{setup.cfg}", O_RDONLY) = -1 ENOENT (No such file or'
                " directory)"
            ),
            '10 newfstatat(AT_FDCWD<{/w}>, "{a.py/x}", 0x7ffd, 0) = -1 ENOTDIR (Not a directory)',
            '10 openat(AT_FDCWD<{/w}>, "{secret}", O_RDONLY) = -1 EACCES (Permission denied)',
        ],
        {"absent": ["/w/setup.cfg", "/w/a.py/x"], "read": []},
    ),
    (
        "stat follows links unless told not to; a descriptor's own stat names no path",
        [
            (
                '10 newfstatat(AT_FDCWD<{/w}>, "{lib}", {st_mode=S_IFDIR|0755, st_size=4096, ...},'
                " 0) = 0"
            ),
            (
                '10 newfstatat(AT_FDCWD<{/w}>, "{link}", {st_mode=S_IFLNK|0777, st_size=3, ...},'
                " AT_SYMLINK_NOFOLLOW) = 0"
            ),
            (
                '10 newfstatat(3<{/w/a.py}>, "", {st_mode=S_IFREG|0644, st_size=9, ...},'
                " AT_EMPTY_PATH) = 0"
            ),
            '10 readlink("{/w/ln}", "{target}", 4095) = 6',
            '10 access("{/etc/ld.so.preload}", R_OK) = -1 ENOENT (No such file or directory)',
        ],
        {
            "stated": {"/w/lib": True, "/w/link": False, "/w/ln": False},
            "absent": ["/etc/ld.so.preload"],
        },
    ),
    (
        "a directory's listing is read through its descriptor",
        [
            '10 openat(AT_FDCWD<{/w}>, "{.}", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY) = 3<{/w}>',
            "10 getdents64(3<{/w}>, 0x5616 /* 2 entries */, 32768) = 48",
            "10 getdents64(3<{/w}>, 0x5616 /* 0 entries */, 32768) = 0",
        ],
        {"listed": ["/w"]},
    ),
    (
        "a relative name after chdir is taken from the new directory, .. kept for the kernel",
        [
            '10 chdir("{sub}") = 0',
            '10 stat("{../a.py}", {st_mode=S_IFREG|0644, ...}) = 0',
            '10 access("{tool}", X_OK) = -1 ENOENT (No such file or directory)',
        ],
        {"stated": {"/w/sub/../a.py": True}, "absent": ["/w/sub/tool"]},
    ),
    (
        "a child keeps its parent's working directory; *at calls name their own",
        [
            '10 chdir("{/w/sub}") = 0',
            "10 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD) = 11",
            '11 access("{x}", F_OK) = 0',
            '11 openat(3<{/other}>, "{y}", O_RDONLY) = 4<{/other/y}>',
            '10 access("{z}", F_OK) = 0',
        ],
        {"stated": {"/w/sub/x": True, "/w/sub/z": True}, "read": ["/other/y"]},
    ),
    (
        (
            "a call split by another process's is joined; a child logged before its fork returns"
            " inherits the forking process's directory"
        ),
        [
            '10 chdir("{/w/d}") = 0',
            "10 vfork( <unfinished ...>",
            '11 execve("{./run.sh}", ["./run.sh"], 0x56 /* 35 vars */ <unfinished ...>',
            "10 <... vfork resumed>)              = 11",
            "11 <... execve resumed>)             = 0",
            "11 exit_group(0)                     = ?",
            "11 +++ exited with 0 +++",
            "10 +++ exited with 3 +++",
        ],
        {
            "read": ["/w/d/run.sh"],
            "executed": ["/w/d/run.sh"],
            "exits": {11: "exited with 0", 10: "exited with 3"},
            "first": 10,
        },
    ),
    (
        "rename, unlink and mkdir change paths; a file read and then replaced is noted",
        [
            '10 openat(AT_FDCWD<{/w}>, "{cfg}", O_RDONLY) = 3<{/w/cfg}>',
            '10 renameat2(AT_FDCWD<{/w}>, "{cfg.tmp}", AT_FDCWD<{/w}>, "{cfg}", 0) = 0',
            '10 unlink("{/w/old}") = 0',
            '10 mkdir("{/w/__pycache__}", 0777) = 0',
            '10 rename("{a}", "{b}") = 0',
        ],
        {
            "changed": ["/w/cfg.tmp", "/w/cfg", "/w/old", "/w/__pycache__", "/w/a", "/w/b"],
            "read_then_changed": ["/w/cfg"],
        },
    ),
    (
        "a file the command created and then read is its own",
        [
            '10 openat(AT_FDCWD<{/w}>, "{t}", O_RDWR|O_CREAT|O_EXCL, 0600) = 3<{/w/t}>',
            '10 openat(AT_FDCWD<{/w}>, "{t}", O_RDONLY) = 3<{/w/t}>',
        ],
        {"changed": ["/w/t"], "read_then_changed": []},
    ),
    (
        "pipes, sockets and deleted files are no paths",
        [
            "10 getdents64(3<pipe:[1234]>, 0x5616 /* 2 entries */, 32768) = 48",
            "10 fchdir(4<{/gone} (deleted)>) = 0",
            '10 stat("{x}", {st_mode=S_IFREG|0644, ...}) = 0',
        ],
        {"listed": [], "stated": {"/w/x": True}},
    ),
    (
        "fchdir moves the working directory to the descriptor's",
        ["10 fchdir(4<{/w/lib}>) = 0", '10 stat("{m.py}", {st_mode=S_IFREG|0644, ...}) = 0'],
        {"stated": {"/w/lib/m.py": True}},
    ),
]


@pytest.mark.parametrize(
    ("lines", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_trace_lines_become_paths(lines: list[str], expected: dict[str, object]) -> None:
    access = traced(*lines)
    for name, value in expected.items():
        found = getattr(access, name)
        if isinstance(value, list):
            assert list(found) == value, name
        else:
            assert found == value, name


def test_names_created_or_removed_in_a_directory_are_volatile() -> None:
    access = traced(
        '10 mkdir("{/w/__pycache__}", 0777) = 0',
        '10 openat(AT_FDCWD<{/w}>, "{out/x.o}", O_WRONLY|O_CREAT, 0666) = 3<{/w/out/x.o}>',
        '10 unlink("{/w/old.txt}") = 0',
    )
    assert access.volatile("/w") == ["__pycache__", "old.txt"]
    assert access.volatile("/w/out") == ["x.o"]
    assert access.is_own("/w/__pycache__/m.pyc")
    assert not access.is_own("/w/a.py")


def test_unescape_reads_hex_and_plain_escapes() -> None:
    assert unescape('"\\x2f\\x77\\xff"') == "/w" + "\udcff"
    assert unescape('"a\\nb\\\\"') == "a\nb\\"


@pytest.mark.parametrize(
    ("path", "dropped"),
    [
        ("/proc/self/maps", True),
        ("/dev/null", True),
        ("/sys/fs/cgroup", True),
        ("/procfs/x", False),
        ("/cache/v1/e/ab", True),
        ("/w/pkg/__pycache__/m.cpython-311.pyc", True),
        ("/w/.mypy_cache/3.11/m.meta.json", True),
        ("/w/build.log", True),
        ("/w/src/a.py", False),
        ("/w/vendor/lib/x.py", True),
        ("/w/vendored.py", False),
    ],
)
def test_ignore_drops_defaults_cache_and_globs(path: str, dropped: bool) -> None:
    ignore = Ignore(["*.log", "vendor/*"], cwd="/w", trees=["/cache"])
    assert ignore(path) is dropped
