"""The team's tracking server for real: `mlflow server --app-name basic-auth` on a PostgreSQL backend store (and
a PostgreSQL user store), a proxied artifact store, and users who sign in through MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD. A new user may read everything and manage only what they create. Through it: the
register stage, `ganops promote`, `mlflow models serve`, and the README's queued sweep (its 4 pipeline variants, 2 at
a time, each in its own `dvc exp run` process: train, evaluate and register)."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.helpers import IMAGE_SHAPE, REPO_ROOT, VENV_BIN, clean_env, free_port, server, sweep, write_params
from tests.registry.test_tracking_server import stage_outputs

# The first test pays for initdb, pg_ctl and the server's start (each up to minutes on a busy machine).
pytestmark = pytest.mark.timeout(600)

ADMIN = "admin"
MODEL = "gan-generator"
SWEEP_EXPERIMENT, SWEEP_MODEL = "sweep", "sweep-generator"  # apart from the register tests' records
USERS = ("alice", "reader", "promoter")  # alice registers; reader and promoter start with the default READ


@pytest.fixture(scope="module")
def team_server(postgres_cluster, tmp_path_factory):
    """One server for the module: (url, {user: password} with the admin's, server log path)."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF (pip install -e '.[server]')")
    root = tmp_path_factory.mktemp("team-server")
    suffix = secrets.token_hex(4)
    backend = postgres_cluster.create_database(f"mlflow_{suffix}")
    auth_config = root / "basic_auth.ini"
    auth_config.write_text(f"[mlflow]\ndefault_permission = READ\n"
                           f"database_uri = {postgres_cluster.create_database(f'mlflow_auth_{suffix}')}\n"
                           f"admin_username = {ADMIN}\n"
                           "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                           # Checking a password hash costs ~0.5 s of CPU; without the cache, every request does.
                           "auth_cache_ttl_seconds = 60\n")
    passwords = {name: secrets.token_urlsafe(16) for name in (ADMIN, *USERS)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", backend, "--artifacts-destination",
               (root / "artifacts").as_uri(), "--app-name", "basic-auth", "--host", "127.0.0.1", "--port",
               str(port), "--workers", "1"]
    secret_key = secrets.token_hex(16)  # signs the UI's CSRF tokens; the same on every server of a team
    env = clean_env(MLFLOW_AUTH_CONFIG_PATH=str(auth_config), MLFLOW_AUTH_ADMIN_PASSWORD=passwords[ADMIN],
                    MLFLOW_FLASK_SERVER_SECRET_KEY=secret_key)
    with server(command, f"{url}/health", env, root / "server.log", timeout=150):
        with pytest.MonkeyPatch.context() as patch:
            signed_in_as(patch, url, ADMIN, passwords[ADMIN])
            from mlflow.server import get_app_client

            admin = get_app_client("basic-auth", tracking_uri=url)
            for name in USERS:
                admin.create_user(username=name, password=passwords[name])
        yield url, {**passwords, "the server's secret key": secret_key}, root / "server.log"


def signed_in_as(patch: pytest.MonkeyPatch, url: str, user: str, password: str) -> None:
    patch.setenv("MLFLOW_TRACKING_URI", url)
    patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    patch.setenv("MLFLOW_TRACKING_USERNAME", user)
    patch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def user_env(url: str, user: str, password: str) -> dict:
    return clean_env(MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)


def run(args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def registered(team_server, tmp_path_factory):
    """Two versions registered by alice through the register stage's real entry point (fd ratio 3, then 2):
    (work folder, the stages' combined output)."""
    url, passwords, _ = team_server
    work = tmp_path_factory.mktemp("team-work")
    params = write_params(work / "params.yaml", register={"max_images_per_request": 8})
    logs = []
    with pytest.MonkeyPatch.context() as patch:
        signed_in_as(patch, url, "alice", passwords["alice"])
        for name, fd_ratio in (("first", 3.0), ("second", 2.0)):
            outputs = stage_outputs(work / name, fd_ratio)
            result = run([sys.executable, str(REPO_ROOT / "pipeline" / "register.py"), "--params", str(params),
                          "--models", str(outputs), "--metrics", str(outputs / "metrics.json"), "--paired",
                          str(outputs / "paired.json"), "--out", str(outputs / "registered.json"), "--prepared",
                          str(outputs / "prepared")], user_env(url, "alice", passwords["alice"]), work)
            assert result.returncode == 0, result.stdout + result.stderr
            logs.append(result.stdout + result.stderr)
    return work, "\n".join(logs)


@contextlib.contextmanager
def as_user(url: str, user: str, password: str):
    """An MLflow client signed in as `user` (MLflow reads the credentials from the environment per request)."""
    from mlflow.tracking import MlflowClient

    with pytest.MonkeyPatch.context() as patch:
        signed_in_as(patch, url, user, password)
        yield MlflowClient(tracking_uri=url, registry_uri=url)


def test_anonymous_client_is_refused(team_server):
    url, _, _ = team_server
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30)
    assert refused.value.code == 401


def test_register_stage_registers_versions_as_a_signed_in_user(team_server, registered):
    url, passwords, _ = team_server
    _, logs = registered
    assert "registered gan-generator version 2 as @candidate" in logs
    with as_user(url, "reader", passwords["reader"]) as client:  # the default READ sees everything
        model = client.get_registered_model(MODEL)
        assert {alias: str(version) for alias, version in model.aliases.items()} == {"candidate": "2",
                                                                                     "champion": "1"}
        assert client.get_run(client.get_model_version(MODEL, "2").run_id).info.user_id == "alice"


def _promote(url: str, user: str, password: str, work) -> subprocess.CompletedProcess:
    params = write_params(work / "promote-params.yaml")
    return run([str(VENV_BIN / "ganops"), "promote", "--params", str(params)], user_env(url, user, password), work)


def test_promote_needs_edit_or_manage_on_the_model(team_server, registered):
    url, passwords, _ = team_server
    work, _ = registered

    refused = _promote(url, "reader", passwords["reader"], work)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip() == (
        f"ganops promote: error: {url}: permission denied: user reader needs EDIT or MANAGE on registered model "
        "gan-generator to move the champion alias to v2; champion is unchanged")
    with as_user(url, ADMIN, passwords[ADMIN]) as client:
        assert str(client.get_registered_model(MODEL).aliases["champion"]) == "1"
        from mlflow.server import get_app_client

        get_app_client("basic-auth", tracking_uri=url).grant_user_permission(
            "promoter", "registered_model", MODEL, "MANAGE")

    promoted = _promote(url, "promoter", passwords["promoter"], work)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "promoted gan-generator v2 to champion (was v1)" in promoted.stdout
    with as_user(url, ADMIN, passwords[ADMIN]) as client:
        assert str(client.get_registered_model(MODEL).aliases["champion"]) == "2"


@pytest.fixture(scope="module")
def swept(team_server, repo_root, tmp_path_factory):
    """The queued sweep run by alice through the team server: (repository, {variant: its queue log})."""
    url, passwords, _ = team_server
    baseline = sweep.make_baseline(repo_root, tmp_path_factory.mktemp("sweep-baseline"), model_name=SWEEP_MODEL)
    repo = sweep.copy_baseline(baseline, tmp_path_factory.mktemp("sweep"))
    env = {**user_env(url, "alice", passwords["alice"]), "MLFLOW_EXPERIMENT_NAME": SWEEP_EXPERIMENT,
           **sweep.GIT_IDENTITY}
    logs = sweep.sweep(repo, env, sweep.README_GRID)  # the local-store test (make test-slow) runs all 8
    assert not (repo / "mlflow.db").exists()  # the queue's workers saw MLFLOW_TRACKING_URI
    return repo, logs


@pytest.mark.timeout(sweep.TEST_TIMEOUT_S)
def test_queued_sweep_through_the_team_server(team_server, swept):
    url, passwords, _ = team_server
    repo, logs = swept
    with as_user(url, "alice", passwords["alice"]) as client:
        sweep.check_records(client, logs, experiment=SWEEP_EXPERIMENT, model=SWEEP_MODEL)
        env = {**user_env(url, "alice", passwords["alice"]), **sweep.GIT_IDENTITY}
        sweep.check_exp_show(repo, env, client, logs, model=SWEEP_MODEL)


@pytest.mark.timeout(sweep.TEST_TIMEOUT_S)  # builds the sweep when run on its own
def test_credentials_appear_in_no_record_file_or_log(team_server, registered, swept):
    url, passwords, server_log = team_server
    work, logs = registered
    sweep_repo, sweep_logs = swept
    recorded = []
    with as_user(url, ADMIN, passwords[ADMIN]) as client:
        for model in (MODEL, SWEEP_MODEL):
            for version in client.search_model_versions(f"name='{model}'"):
                recorded.append(json.dumps(version.tags))
                run_record = client.get_run(version.run_id)
                recorded += [json.dumps(run_record.data.params), json.dumps(run_record.data.tags)]
            recorded.append(json.dumps(client.get_registered_model(model).tags))
    files = [path.read_text(errors="replace") for folder in (work, sweep_repo) for path in folder.rglob("*")
             if path.is_file() and path.suffix in (".yaml", ".json", ".lock", ".log", ".txt", ".out")]
    for name, password in passwords.items():
        for text in (*recorded, *files, logs, *sweep_logs.values(), server_log.read_text(errors="replace")):
            assert password not in text, f"{name}'s password leaked"


def test_champion_serves_through_the_authenticated_server(team_server, registered, tmp_path):
    url, passwords, _ = team_server
    port = free_port()
    command = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion", "--env-manager",
               "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    with server(command, f"http://127.0.0.1:{port}/ping", user_env(url, "reader", passwords["reader"]),
                tmp_path / "serve.log", timeout=150):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         data=json.dumps({"dataframe_records": [{"n": 2}]}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    assert response.status == 200
    assert len(body["predictions"]) == 2 and len(body["predictions"][0]) == IMAGE_SHAPE[0]

