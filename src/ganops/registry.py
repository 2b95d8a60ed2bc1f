"""The MLflow Model Registry side: the generator as a pyfunc model, registration with an alias, loading
by alias."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from ganops import artifacts, tracking
from ganops.config import RegisterConfig
from ganops.errors import GanopsError
from ganops.models import sampling
from ganops.training.train import GENERATOR_FILE, RUN_FILE

ARTIFACT_NAME = "generator"  # the logged model's name within the run
SETTINGS_FILE = "settings.json"
PACKAGE_DIR = Path(__file__).resolve().parent


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """Rows in, images out. Each input row asks for `n` images drawn with `seed`; the output stacks all
    rows' images, NHWC floats in [-1, 1]."""

    def load_context(self, context):
        self.generator = sampling.load_generator(context.artifacts["generator"])
        self.settings = json.loads(Path(context.artifacts["settings"]).read_text())

    def predict(self, context, model_input: pd.DataFrame, params=None):
        limit = self.settings["max_images_per_request"]
        batches = []
        for row_number, row in enumerate(model_input.to_dict(orient="records")):
            count, seed = int(row["n"]), int(row.get("seed", 0))
            if not 1 <= count <= limit:
                raise GanopsError(f"row {row_number}: n={count} is outside 1..{limit}")
            batches.append(sampling.sample(self.generator, count, seed))
        return np.concatenate(batches)


def input_example() -> pd.DataFrame:
    return pd.DataFrame({"n": [2], "seed": [0]}).astype("int64")


def log_and_register(cfg: RegisterConfig, generator_path: Path, run_id: str, tags: dict[str, str]) -> dict:
    """Log the generator as a pyfunc model into `run_id`, register a new version, point `cfg.alias` at it."""
    generator = sampling.load_generator(generator_path)
    example = input_example()
    signature = infer_signature(example, sampling.sample(generator, 2, 0))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / SETTINGS_FILE
        settings.write_text(json.dumps({"max_images_per_request": cfg.max_images_per_request,
                                        "latent_dim": sampling.latent_dim(generator)}))
        with tracking.resume_run(run_id):
            info = mlflow.pyfunc.log_model(
                name=ARTIFACT_NAME,
                python_model=GeneratorModel(),
                artifacts={"generator": str(generator_path), "settings": str(settings)},
                code_paths=[str(PACKAGE_DIR)],  # the model carries its own ganops code
                signature=signature,
                input_example=example,
                registered_model_name=cfg.model_name,
                # Listed, not inferred: inference loads the model in a subprocess and takes minutes.
                pip_requirements=_requirements(),
            )
    version = str(info.registered_model_version)
    client = tracking.client()
    for key, value in tags.items():
        client.set_model_version_tag(cfg.model_name, version, key, value)
    client.set_registered_model_alias(cfg.model_name, cfg.alias, version)
    return {"name": cfg.model_name, "version": version, "alias": cfg.alias, "run_id": run_id,
            "model_uri": f"models:/{cfg.model_name}@{cfg.alias}"}


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in
            ("tensorflow", "keras", "mlflow", "numpy", "pandas", "pillow")]


def load_by_alias(name: str, alias: str) -> mlflow.pyfunc.PyFuncModel:
    tracking.configure()
    try:
        return mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
    except mlflow.exceptions.MlflowException as exc:
        raise GanopsError(f"models:/{name}@{alias}: {str(exc).splitlines()[0]}") from None


def run(cfg: RegisterConfig, model_dir: str | Path, metrics_path: str | Path, out_path: str | Path) -> dict:
    model_dir = Path(model_dir)
    run_id = artifacts.read_json(model_dir / RUN_FILE)["run_id"]
    metrics = artifacts.read_json(metrics_path)
    tags = {f"metric.{k}": f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in metrics.items()}
    commit = tracking.git_commit()
    if commit:
        tags["git_commit"] = commit
    registered = log_and_register(cfg, model_dir / GENERATOR_FILE, run_id, tags)
    artifacts.write_json(out_path, registered)
    print(f"registered {registered['name']} version {registered['version']} as @{registered['alias']}",
          flush=True)
    return registered
