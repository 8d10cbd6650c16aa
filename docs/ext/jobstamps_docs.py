"""Reference pages generated from the files that hold the truth, so they cannot drift.

Directives:

``.. jobstamp-options::``
    Every option of ``jobstamp --help``, from :data:`jobstamps.options.TABLE`. The content may
    add paragraphs to an option (an indented block after a line naming it); naming an option
    the table lacks is an error.
``.. cmake-module:: <path>``
    The rST block at the top of a CMake file (``#[==[.rst: ... #]==]``), with its
    ``.. command::`` entries turned into sub-sections.
``.. make-include:: <path>``
    The variables and functions described in the comments of ``make/jobstamps.mk``.
``.. precommit-hooks:: <path>``
    A table of the hooks in ``.pre-commit-hooks.yaml``.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.application import Sphinx

__all__ = [
    "cmake_rst",
    "hook_rows",
    "make_rst",
    "option_labels",
    "options_rst",
    "setup",
]


# -- jobstamp options ---------------------------------------------------------------------------


def option_labels() -> dict[str, str]:
    """Map each long option of ``jobstamp --help`` to its label: short form, name and metavar."""
    from jobstamps.options import ALIASES, TABLE

    shorts = {long: short for short, long in ALIASES.items()}
    labels = {}
    for name, (_, _, metavar, _) in TABLE.items():
        label = f"``{name}``" + (f" *{metavar}*" if metavar else "")
        if name in shorts:
            label = f"``{shorts[name]}``, {label}"
        labels[name] = label
    return labels


def _extras(content: list[str]) -> dict[str, list[str]]:
    """Split a directive's content into paragraphs per option: ``--name`` then indented text."""
    extras: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in content:
        if line.startswith("--"):
            current = extras.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise ValueError(f"text before the first option name: {line!r}")
    return {
        name: textwrap.dedent("\n".join(lines)).strip().splitlines()
        for name, lines in extras.items()
    }


def options_rst(content: list[str]) -> list[str]:
    """Return the definition list of every option, with the paragraphs ``content`` adds."""
    from jobstamps.options import TABLE

    extras = _extras(content)
    unknown = sorted(set(extras) - set(TABLE))
    if unknown:
        raise ValueError(f"jobstamp --help has no option {', '.join(unknown)}")
    lines: list[str] = []
    for name, label in option_labels().items():
        help_text = TABLE[name][3]
        sentence = f"{help_text[0].upper()}{help_text[1:]}"
        lines += [label, f"   {sentence if sentence.endswith('.') else sentence + '.'}", ""]
        if extras.get(name):
            lines += [f"   {line}" if line else "" for line in extras[name]]
            lines.append("")
    return lines


# -- CMake modules ----------------------------------------------------------------------------


def cmake_rst(text: str) -> list[str]:
    """Return the rST block of a CMake file, ``.. command:: name`` entries as sub-sections."""
    found = re.search(r"#\[(=*)\[\.rst:\n(.*?)\n#\]\1\]", text, re.DOTALL)
    if found is None:
        raise ValueError("no #[[.rst: ... #]] block")
    lines: list[str] = []
    in_command = False
    for line in found.group(2).splitlines():
        command = re.fullmatch(r"\.\. command:: (\w+)", line)
        if command:
            title = f"``{command.group(1)}()``"
            lines += [f".. _cmake-{command.group(1)}:", "", title, "^" * len(title), ""]
            in_command = True
        elif in_command and line.startswith("  "):
            lines.append(line[2:])
        else:
            in_command = in_command and not line.strip()
            lines.append(line)
    return lines


# -- GNU Make include ---------------------------------------------------------------------------


def _comment_blocks(text: str) -> list[list[str]]:
    """Return each run of ``#`` comment lines, without the ``# `` prefix."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            current.append(line[2:] if line.startswith("# ") else line[1:])
        elif current:
            blocks.append(current)
            current = []
    return blocks


def _labelled(lines: list[str], label: str) -> list[str]:
    """Return the indented lines that follow ``label`` (e.g. ``Function:``) in ``lines``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(label))
    body = []
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        body.append(line)
    return body


def make_rst(text: str) -> list[str]:
    """Return the reference of a make include: its variables, then each of its functions."""
    # The comments quote code as a shell comment would (`jobstamp`): make it literal in rST.
    blocks = [
        [re.sub(r"`([^`]+)`", r"``\1``", line) for line in block] for block in _comment_blocks(text)
    ]
    public = re.findall(r"^([a-z]\w*) [?:]?=", text, re.MULTILINE)
    variables = next(block for block in blocks if any(x.startswith("Variables") for x in block))
    label = next(line for line in variables if line.startswith("Variables"))
    intro = label.removeprefix("Variables").strip(" :()")
    lines = ["Variables", "~~~~~~~~~", "", f"{intro[0].upper()}{intro[1:]}.", ""]
    for line in _labelled(variables, "Variables"):
        name, _, rest = line.strip().partition(" ")
        if name.isupper():
            lines += [f"``{name}``", f"   {rest.strip()}"]
        else:
            lines[-1] += f" {line.strip()}"
    lines += ["", "Functions", "~~~~~~~~~", ""]
    documented = []
    for block in blocks:
        if not any(line.startswith("Function:") for line in block):
            continue
        body = textwrap.dedent("\n".join(_labelled(block, "Function:"))).splitlines()
        signature, description = body[0], textwrap.dedent("\n".join(body[1:]))
        documented += re.findall(r"\$\(call (\w+)", signature)
        lines += [f"``{signature}``", *textwrap.indent(description, "   ").splitlines(), ""]
    missing = sorted(set(public) - set(documented) - {"JOBSTAMP", "JOBSTAMP_FLAGS"})
    if missing:
        raise ValueError(f"functions without a Function: comment: {', '.join(missing)}")
    quoting = next(block for block in blocks if any(x.startswith("Quoting:") for x in block))
    start = next(i for i, line in enumerate(quoting) if line.startswith("Quoting:"))
    paragraph = " ".join(line.strip() for line in quoting[start:]).removeprefix("Quoting: ")
    lines += ["Quoting", "~~~~~~~", "", paragraph[0].upper() + paragraph[1:], ""]
    return lines


# -- pre-commit hooks ---------------------------------------------------------------------------


def hook_rows(text: str) -> list[tuple[str, str, str, str]]:
    """Return (id, command, declared files, files it runs on) for each hook."""
    rows = []
    for hook in yaml.safe_load(text):
        words = shlex.split(hook["entry"])
        command, declared = "your ``args``", ""
        if "--" in words:
            cut = words.index("--")
            command = " ".join(words[cut + 1 :])
            if "--dependencies" in words[:cut]:
                declared = " ".join(words[words.index("--dependencies") + 1 : cut])
            command = f"``{command}``"
            if "--trace" in words[:cut]:
                declared = "none: ``--trace`` finds what it reads"
            else:
                declared = f"``{declared}``" if declared else ""
            if hook.get("pass_filenames") is False:
                command += f" once, over ``{' '.join(hook.get('args', []))}``"
        types = hook.get("types") or hook.get("types_or") or []
        rows.append(
            (
                f"``{hook['id']}``",
                command,
                declared,
                ", ".join(types) or "what ``types`` selects",
            )
        )
    return rows


def hooks_rst(text: str) -> list[str]:
    """Return a list table of the hooks."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 20 30 30 20", ""]
    header = ("hook", "runs", "configuration files declared", "files")
    for row in [header, *hook_rows(text)]:
        lines += [f"   * - {row[0]}"] + [f"     - {cell}" for cell in row[1:]]
    return lines


# -- directives ---------------------------------------------------------------------------------


class _Generated(SphinxDirective):
    """A directive whose rST is generated, then parsed as if written in the page."""

    required_arguments: ClassVar[int] = 0
    has_content: ClassVar[bool] = True
    titles: ClassVar[bool] = False

    def lines(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        try:
            lines = self.lines()
        except (ValueError, OSError, StopIteration) as error:
            raise self.error(f"{self.name}: {error}") from error
        source = self.get_source_info()[0]
        if self.titles:
            self.state_machine.insert_input(lines, source)
            return []
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source), self.content_offset, container)
        return list(container.children)


class JobstampOptions(_Generated):
    """``.. jobstamp-options::``: every option of ``jobstamp --help``."""

    def lines(self) -> list[str]:
        return options_rst(list(self.content))


class _FromFile(_Generated):
    """A directive that renders the file its argument names, relative to the repository root."""

    required_arguments: ClassVar[int] = 1
    has_content: ClassVar[bool] = False
    render: ClassVar[Callable[[str], list[str]]]

    def lines(self) -> list[str]:
        path = Path(self.env.srcdir).parent / self.arguments[0]
        self.env.note_dependency(str(path))
        return type(self).render(path.read_text(encoding="utf-8"))


class CMakeModule(_FromFile):
    """``.. cmake-module:: cmake/X.cmake``: the file's rST block."""

    titles: ClassVar[bool] = True
    render = staticmethod(cmake_rst)


class MakeInclude(_FromFile):
    """``.. make-include:: make/jobstamps.mk``: its variables and functions."""

    titles: ClassVar[bool] = True
    render = staticmethod(make_rst)


class PrecommitHooks(_FromFile):
    """``.. precommit-hooks:: .pre-commit-hooks.yaml``: a table of the hooks."""

    render = staticmethod(hooks_rst)


def setup(app: Sphinx) -> dict[str, object]:
    """Register the directives."""
    app.add_directive("jobstamp-options", JobstampOptions)
    app.add_directive("cmake-module", CMakeModule)
    app.add_directive("make-include", MakeInclude)
    app.add_directive("precommit-hooks", PrecommitHooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
