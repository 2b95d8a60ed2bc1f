"""What a user reads of `ganops`: the help with its examples, the version, and commands whose flags are the ones
the help and the README show (checked by parsing them, without running them)."""

from __future__ import annotations

import re
import shlex
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from ganops.cli import HELP, app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), prog_name="ganops")


def test_help_is_written_for_users_and_shows_examples():
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Usage: ganops [OPTIONS] COMMAND [ARGS]..."
    assert "registers in MLflow" in result.output and "MLFLOW_TRACKING_URI" in result.output
    assert "thin like pipeline" not in result.output  # the maintainers' note stays in the module docstring
    assert "  Examples:" in lines
    for command in ("promote", "generate"):
        assert re.search(rf"^  {command}\s+\S", result.output, re.MULTILINE), f"{command} missing from Commands"
    assert "--version" in result.output


def test_no_arguments_shows_the_help():
    result = invoke()
    assert "Usage: ganops [OPTIONS] COMMAND [ARGS]..." in result.output and "Examples:" in result.output


def test_version_is_the_installed_package_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output == f"ganops {version('ganops')}\n"


def documented_commands(text: str) -> list[str]:
    """`ganops …` command lines of a help text or README code blocks, comments and placeholders dropped."""
    commands = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("ganops ") and "COMMAND" not in line:
            commands.append(line.split("  ")[0].split(" #")[0].strip())
    return commands


def fenced_blocks(markdown: str, languages: tuple[str, ...] = ("bash", "sh", "console", "")) -> list[str]:
    """The bodies of fenced code blocks whose info string is one of `languages` ("" for none), fences paired
    line by line (a regex pairs a closing fence with the next opening one)."""
    blocks, body, language = [], None, None
    for line in markdown.splitlines():
        if line.startswith("```"):
            if body is None:
                body, language = [], line[3:].strip()
            else:
                if language in languages:
                    blocks.append("\n".join(body))
                body = None
        elif body is not None:
            body.append(line)
    return blocks


def readme_commands(readme: str) -> list[str]:
    return documented_commands("\n".join(fenced_blocks(readme)))


@pytest.mark.parametrize("command", documented_commands(HELP))
def test_every_example_in_the_help_parses(command):
    # --help is eager: the options before it are parsed (an unknown flag fails with exit code 2) but nothing runs.
    result = invoke(*shlex.split(command)[1:], "--help")
    assert result.exit_code == 0, f"{command}: {result.output}"


def test_every_ganops_command_in_the_readme_parses(repo_root):
    commands = readme_commands((repo_root / "README.md").read_text())
    assert any(c.startswith("ganops promote --dry-run") for c in commands)
    for command in commands:
        result = invoke(*shlex.split(command)[1:], "--help")
        assert result.exit_code == 0, f"README: {command}: {result.output}"


def test_generate_help_names_the_flags_it_takes():
    result = invoke("generate", "--help")
    assert result.exit_code == 0
    assert "Write N images (-n)" in result.output
    for flag in ("--out DIR", "--model URI", "-n, --count N", "--seed INT", "--label CLASS", "--params FILE"):
        assert flag in result.output, flag


@pytest.mark.parametrize("args, message", [
    (("generate", "-n", "0", "--out", "x"), "Invalid value for '-n' / '--count'"),
    (("generate", "--seed", "-1", "--out", "x"), "Invalid value for '--seed'"),
    (("generate", "-n", "4"), "Missing option '--out'."),
    (("promote", "--dryrun"), "No such option: --dryrun"),
])
def test_bad_flags_are_refused_before_anything_runs(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
