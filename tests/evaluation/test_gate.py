"""The promotion gate decides on real evidence: evaluations of stand-in generators on the built-in digits, in
the digits featurizer, registered into a real SQLite store and compared by `promotion.promote`."""

from __future__ import annotations

import numpy as np
import pytest

from ganops import artifacts, tracking
from ganops.config import EvaluateConfig, PromoteConfig, RegisterConfig
from ganops.evaluation import evaluate
from ganops.registry import promotion, registration

EVALUATE = EvaluateConfig(bootstrap_replicates=200, kid_subsets=10)  # full size: the gate as the pipeline runs it
REGISTER = RegisterConfig(max_images_per_request=16)


@pytest.fixture(scope="module")
def full_digits(prepare_digits, tmp_path_factory):
    """All 1,797 digits prepared (1,167 / 270 / 360) and the default featurizer trained on them: at the shared
    fixture's 45 validation images, fewer than the 128 features, a Fréchet distance barely tells noise from
    real images."""
    from ganops.config import FeaturizeConfig
    from ganops.features import featurizer

    prepared = prepare_digits(max_images=None)
    root = tmp_path_factory.mktemp("full-digits")
    featurizer.run(FeaturizeConfig(), prepared, root / "featurizer.keras", root / "featurizer.json")
    splits = {name: artifacts.read_split(prepared / file_name)
              for name, file_name in artifacts.PreparedData.SPLIT_FILES.items()}
    return splits, featurizer.load(root / "featurizer.keras")


@pytest.fixture(scope="module")
def evidence(full_digits):
    """The gate's evidence for each stand-in, all at the same n (the validation split's 270 images)."""
    digits_splits, digits_featurizer = full_digits
    train, validation = digits_splits["train"], digits_splits["validation"]
    count = len(validation)
    rng = np.random.default_rng(0)
    noisy = train.images[rng.choice(len(train), count, replace=False)]
    stand_ins = {
        "noisy": np.clip(noisy + rng.normal(0.0, 0.5, noisy.shape).astype(np.float32), -1.0, 1.0),
        "real": validation.images,  # real images the generator never trained on: clearly better than noise
        "copies": train.images[:count],  # training images returned verbatim
    }
    found = {}
    for name, images in stand_ins.items():
        evaluation = evaluate.compute(EVALUATE, images, train, digits_splits["test"], validation, digits_featurizer)
        found[name] = registration.gate_evidence(evaluation.metrics, {**evaluation.paired, "data_hash": "d" * 40})
    return found


def _register(generator_path, evidence: dict) -> str:
    import mlflow

    metrics = {"fd": evidence["estimates"]["fd"], "featurizer_hash": evidence["featurizer_hash"]}
    tracking.configure()
    with mlflow.start_run(run_name="gate"):
        mlflow.log_param("train.arch", "mlp")
        return registration.log_and_register(REGISTER, generator_path, metrics, evidence)["version"]


@pytest.fixture
def generator_path(tmp_path):
    import keras

    from ganops.models.networks import build_pair

    keras.utils.set_random_seed(0)
    generator, _ = build_pair("mlp", 4, (8, 8, 1), base_filters=4)
    generator.save(tmp_path / "generator.keras")
    return tmp_path / "generator.keras"


def _decide(generator_path, champion: dict, candidate: dict) -> promotion.Decision:
    assert _register(generator_path, champion) == "1"  # the first version becomes champion
    assert _register(generator_path, candidate) == "2"
    return promotion.promote(REGISTER, PromoteConfig())


def test_a_clearly_better_candidate_is_promoted(mlflow_store, generator_path, evidence):
    decision = _decide(generator_path, evidence["noisy"], evidence["real"])
    assert decision.outcome == "promoted" and decision.champion_after == "2", decision.line()
    assert "candidate better in 100.0% of 200 paired bootstrap replicates" in decision.line()


def test_a_generator_returning_training_images_is_refused(mlflow_store, generator_path, evidence):
    copies = evidence["copies"]
    assert copies["estimates"]["fd"] < evidence["noisy"]["estimates"]["fd"]  # its distance alone would pass
    decision = _decide(generator_path, evidence["noisy"], copies)
    assert decision.outcome == "rejected" and decision.champion_after == "1"
    assert "copying 1.000 is above the real floor's interval" in decision.line()


def test_two_equal_candidates_leave_the_champion_alone(mlflow_store, generator_path, evidence):
    decision = _decide(generator_path, evidence["real"], evidence["real"])
    assert decision.outcome == "rejected" and decision.champion_after == "1"
    assert "candidate better in 0.0% of 200 paired bootstrap replicates, below the 95% required" in decision.line()
