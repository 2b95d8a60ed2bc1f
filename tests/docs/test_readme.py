"""Every shell command and Python block in README.md runs as written, in README order, in a temporary git + DVC
repository made from this checkout with a shrunken params.yaml (300 digits, a few epochs).

Each command is matched against RULES (first match wins), which says how it runs: as written; as written with
arguments appended that only shrink it (fewer seconds, seeds or replicates); as a server that must answer
before the commands after it use it; or not at all, with the reason. A command that no rule matches fails the
test, so a new README line is either run here or skipped on purpose. A Python block runs with the repository
as its working directory. The commands on MNIST t10k (`needs_mnist`: real data, a few minutes, and the data may
be absent) run in a second test, in `make test-slow`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import MNIST_DIR, REPO_ROOT, SHARED_DIR, VENV_BIN, free_port, server, write_shrunk_params

# On shrunk_params; the latent width stays params.yaml's, which the README's `latent` request spells out.
LATENT_DIM = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["train"]["latent_dim"]
SHRUNK = {"featurize": {"epochs": 2}, "train": {"epochs": 3, "monitor_every_epochs": None, "latent_dim": LATENT_DIM}}
SHRINK_EXPERIMENT = ["-S", "train.max_seconds=3"]  # the MNIST experiments: a few seconds of training


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str  # a regular expression the command (comments removed, continuation lines joined) must match
    action: str  # run | shrink | server | skip
    detail: str = ""  # shrink: arguments appended; server: the URL path that must answer; skip: the reason
    needs_mnist: bool = False  # on ../shared's MNIST t10k: run by the slow test only


# Commands and Python blocks for a team's own hosts (PostgreSQL, S3, the tracking server) are not run here.
TEAM_ONLY = (r"(example\.internal|s3://|PGPASSWORD|MLFLOW_S3_ENDPOINT_URL|MLFLOW_AUTH_CONFIG_PATH|^dvc remote "
             r"|^dvc (push|pull)$)")

RULES = (
    Rule(r"^make (test|test-slow|test-all)\b", "skip", "the test suite itself: this test runs inside it"),
    Rule(r"GPU=1", "skip", "needs an NVIDIA GPU and the CUDA wheels (tests/unit/test_packaging.py checks the "
                           "GPU=1 install line; tests/training/test_devices.py the GPU device choice)"),
    # `make pipeline` is set-up (the .venv this test runs in) plus `dvc repro`: the set-up part is what `make
    # test` just did, so the repository's own pipeline runs here as `dvc repro`.
    Rule(r"^make pipeline$", "as dvc repro"),
    Rule(r"^make help$", "run"),
    Rule(r"^ganops generate .*--per-class", "skip", "needs a conditional champion (the README's is unconditional); "
         "tests/serving/test_generate.py runs it on one and reads the folders back"),
    Rule(r"(^TF_CONFIG=|^srun |scontrol show hostnames|SLURM_PROCID)", "skip",
         "a cluster of hosts; tests/training/test_multi_worker.py runs the chief's stage and `ganops worker` on "
         "127.0.0.1"),
    Rule(r"^make lint$", "skip", ".ci/run runs it after the tests (it installs the lint extra into the .venv)"),
    Rule(r"^source \.venv/bin/activate$", "skip", "every command here already runs with the venv's bin first "
                                                  "on PATH, which is all activate does"),
    Rule(r"^\$EDITOR params\.yaml && dvc repro$", "run"),  # EDITOR=true: nothing edited, nothing to rerun
    Rule(r"^dvc exp run .*data\.path=\.\./shared/", "shrink", " ".join(SHRINK_EXPERIMENT), needs_mnist=True),
    Rule(r"^mkdir -p data/raw/\S+ && cp \.\./shared/data/", "run", needs_mnist=True),
    Rule(r"^dvc add data/raw/\S+$", "run", needs_mnist=True),
    Rule(r"^dvc exp run .*data\.path=data/raw/", "shrink", " ".join(SHRINK_EXPERIMENT), needs_mnist=True),
    Rule(r"(--queue|^dvc queue )", "skip", "a sweep of whole pipeline variants: tests/registry/"
                                          "test_team_server.py runs it through a tracking server, tests/"
                                          "pipeline/test_parallel_experiments.py into the local store"),
    Rule(r"^dvc (pull --allow-missing|exp (run -n seed-|push origin|pull origin))", "skip",
         "the CI-matrix recipe across clones: tests/pipeline/test_sweep_across_clones.py runs it with two clones, "
         "a bare git remote and a local DVC remote"),
    Rule(r"^dvc (exp run|exp show|metrics show|plots show)\b", "run"),
    Rule(r"^mlflow ui ", "server", "/"),
    Rule(r"^python benchmarks/train_throughput\.py ", "shrink", "--steps 2 --repeats 1"),
    Rule(r"^python benchmarks/digits_quality\.py$", "shrink", "--seeds 0"),
    Rule(r"^python benchmarks/large_data\.py ", "skip", "300,000 images and every stage: about an hour here; "
         "tests/pipeline/test_large_data_benchmark.py runs it at a tiny size"),
    Rule(r"^python benchmarks/quality_budget\.py --data shapes --out reports/shapes_r1 ", "skip",
         "the same benchmark, data and --variant path as the shapes command before it, which runs here (each costs "
         "a featurizer's training); minibatch_std and r1_weight are tested in tests/model and tests/unit"),
    Rule(r"^python benchmarks/quality_budget\.py --data shapes ", "shrink",
         "--seconds 4 --every 2 --seeds 0 --shapes-count 200 --shapes-size 16"),
    Rule(r"^python benchmarks/quality_budget\.py --out reports/(bf16|conditional) ", "skip",
         "the MNIST benchmark with --variant settings: its plain MNIST command runs here and the shapes command "
         "exercises --variant (each MNIST run costs about a minute here); bf16 and conditional training, "
         "evaluation and serving are tested in tests/model, tests/training, tests/evaluation and tests/serving"),
    Rule(r"^python benchmarks/quality_budget\.py ", "shrink", "--seconds 4 --every 2 --seeds 0",
         needs_mnist=True),
    Rule(r"^ganops ", "run"),
    Rule(r"^MLFLOW_TRACKING_URI=\S+ mlflow models serve ", "server", "/ping"),
    Rule(r"^curl -s localhost:\d+/invocations ", "run"),
    Rule(r"^pip install -c constraints\.txt -e '\.\[server,s3\]'", "shrink", "--dry-run --quiet"),
    Rule(TEAM_ONLY, "skip",
         "needs the team's PostgreSQL host, S3 bucket or tracking server (tests/registry/test_team_server.py runs "
         "`mlflow server --app-name basic-auth` on a local PostgreSQL; tests/registry/test_dvc_remote.py pushes to "
         "and pulls from a local remote)"),
)


def blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block, fences paired line by line."""
    found, body, language = [], None, ""
    for line in markdown.splitlines():
        if line.startswith("```"):
            if body is None:
                body, language = [], line[3:].strip()
            else:
                found.append((language, "\n".join(body)))
                body = None
        elif body is not None:
            body.append(line)
    return found


def commands(script: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments (outside quotes) removed."""
    joined = re.sub(r"\\\n\s*", "", script)  # "a \\<newline>  b" -> "a b"
    result = []
    for raw in joined.splitlines():
        line = re.sub(r"\s+#(?=[^'\"]*$).*$", "", raw).strip()  # a trailing comment after the last quote
        if line and not line.startswith("#"):
            result.append(line)
    return result


def steps(readme: str) -> list[tuple[str, str]]:
    """("shell", command) and ("python", block) in README order; a block in any other language is prose."""
    found = []
    for language, body in blocks(readme):
        if language in ("bash", "sh", "console"):
            found += [("shell", command) for command in commands(body)]
        elif language == "python":
            found.append(("python", body))
        elif language != "text":
            raise AssertionError(f"README.md: a ```{language or '(no language)'} block: say bash, python or text")
    return found


def rule_for(command: str) -> Rule:
    for rule in RULES:
        if re.search(rule.pattern, command):
            return rule
    raise AssertionError(f"README.md: no rule says how to test {command!r}: add one to RULES in {__file__}")


@contextlib.contextmanager
def _server(command: str, health: str, cwd: Path, env: dict, log: Path) -> Iterator[int]:
    """Run `command` as a server on a free port (its own `-p`/`--port` replaced, or `--port` added) until the
    block ends; yields the port."""
    port = free_port()
    if re.search(r"(-p|--port) \d+", command):
        command = re.sub(r"(-p|--port) \d+", rf"\g<1> {port}", command)
    else:
        command += f" --port {port}"
    # 420 s: on a CI machine at load 5–6, `mlflow ui`'s uvicorn workers died and restarted for over 180 s
    # before the first answer (the server log is in the failure message when it happens again).
    with server(["bash", "-c", command], f"http://127.0.0.1:{port}{health}", env, log, timeout=420, cwd=cwd):
        yield port


@pytest.fixture(scope="module")
def repo(tmp_path_factory, repo_root) -> tuple[Path, dict]:
    """A git + DVC repository holding this checkout's pipeline, shrunken, with ../shared beside it."""
    root = tmp_path_factory.mktemp("readme")
    repo = root / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", "Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(repo_root / name, repo / name)
    for name in ("pipeline", "src", "benchmarks", "data/raw"):
        shutil.copytree(repo_root / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    if SHARED_DIR.exists():
        (root / "shared").symlink_to(SHARED_DIR)  # the README's ../shared/data paths
    write_shrunk_params(repo / "params.yaml", **SHRUNK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env['PATH']}", EDITOR="true", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    for command in ("git init -q -b main", "python -m dvc init -q", "python -m dvc config core.analytics false",
                    "git add -A", "git commit -qm init"):
        subprocess.run(command, shell=True, cwd=repo, env=env, check=True, capture_output=True)
    return repo, env


def _run(command: str, repo: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, shell=True, check=False, cwd=repo, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, (f"README command failed ({done.returncode}): {command}\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def test_every_readme_command_has_a_rule(repo_root):
    for kind, text in steps((repo_root / "README.md").read_text()):
        if kind == "shell":
            rule_for(text)


def _run_readme(repo: Path, env: dict, readme: str, tmp_path: Path, mnist: bool) -> list[str]:
    """Run the README's steps in order, the MNIST t10k ones (`needs_mnist`) when `mnist` is true and all the
    others when it is false; print what ran, the slowest first, and what was skipped and why. Returns what ran."""
    ran, skipped = [], []
    seconds: dict[str, float] = {}
    server_port: int | None = None
    with contextlib.ExitStack() as servers:
        for kind, text in steps(readme):
            if kind == "python":
                if mnist:  # no Python block reads MNIST: the other test runs them all
                    continue
                if re.search(TEAM_ONLY, text):
                    skipped.append(("python block", "for a team's own tracking server (tests/registry/"
                                                    "test_team_server.py creates users and permissions the same way)"))
                    continue
                _run(f"{sys.executable} - <<'PYTHON'\n{text}\nPYTHON", repo, env)
                ran.append("python block")
                continue
            rule = rule_for(text)
            if rule.needs_mnist != mnist:
                if rule.needs_mnist:
                    skipped.append((text, "MNIST t10k: test_readme_mnist_commands_run_as_written (make test-slow)"))
                continue
            if rule.action == "skip":
                skipped.append((text, rule.detail))
                continue
            if rule.action == "server":
                log = tmp_path / f"server-{len(ran)}.log"
                server_port = servers.enter_context(_server(text, rule.detail, repo, env, log))
                ran.append(text)
                continue
            # A comment the parser could not strip (an apostrophe in it) would swallow what a shrink appends, and
            # the command would run unshrunk: e.g. a real `pip install -e .` of this temporary repository.
            assert rule.action != "shrink" or "#" not in text, f"README.md: strip the comment of {text!r}"
            command = {"as dvc repro": "dvc repro", "shrink": f"{text} {rule.detail}"}.get(rule.action, text)
            if server_port is not None:  # the README's port is the server's, which runs on a free one here
                command = re.sub(r"localhost:\d+", f"localhost:{server_port}", command)
            started = time.monotonic()
            done = _run(command, repo, env)
            if command.startswith("curl"):
                assert done.stdout.startswith('{"predictions"'), f"{command}: {done.stdout[:300]}"
            ran.append(text)
            seconds[text] = time.monotonic() - started
    # Where this test's minutes go (pytest -s, or the captured output of a failure): the slowest commands first.
    print(f"\nran {len(ran)} README commands; the slowest:")
    for text, took in sorted(seconds.items(), key=lambda item: -item[1])[:15]:
        print(f"  {took:6.1f} s  {text}")
    print(f"skipped {len(skipped)}:")
    for text, reason in skipped:
        print(f"  {text}  — {reason}")
    return ran


def test_readme_commands_run_as_written(repo, repo_root, tmp_path):
    repo, env = repo
    ran = _run_readme(repo, env, (repo_root / "README.md").read_text(), tmp_path, mnist=False)
    assert any(text.startswith("ganops promote") for text in ran) and "python block" in ran


@pytest.mark.slow
def test_readme_mnist_commands_run_as_written(repo, repo_root, tmp_path):
    """The README's commands on MNIST t10k (real data: a few minutes), in a repository where the others may or may
    not have run first: each starts its own `dvc exp run` or benchmark from the data files."""
    if not MNIST_DIR.exists():
        pytest.skip(f"{MNIST_DIR} is absent")
    repo, env = repo
    ran = _run_readme(repo, env, (repo_root / "README.md").read_text(), tmp_path, mnist=True)
    assert any(text.startswith("dvc exp run") for text in ran)
