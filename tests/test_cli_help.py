"""Every command's --help works, shows an example, and `lowvalue --version` names the package's version."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

import lowvalue
from lowvalue.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        out += _commands(command, path) if isinstance(command, click.Group) else [path]
    return out


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(main, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert re.search(r"Example:\n\s+(lowvalue|LOWVALUE_\w+=\S+ lowvalue) " + " ".join(path), r.output) or \
        re.search(r"Example:\n(\s+lowvalue .*\n)*\s+lowvalue " + " ".join(path), r.output), r.output


def test_version() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"lowvalue, version {lowvalue.__version__}"
