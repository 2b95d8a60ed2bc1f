"""The train stage saves its dcgan generator with standing BatchNorm statistics, while the checkpoint's
EMA generator keeps its averaged ones so that a resume continues exactly."""

from __future__ import annotations

import keras
import numpy as np

from ganops import artifacts
from ganops.models import sampling, standing
from ganops.training import checkpoint, train
from tests.helpers import shrunk_params


def _statistics(generator: keras.Model) -> list[np.ndarray]:
    return [variable.numpy() for layer in standing.batchnorm_layers(generator)
            for variable in (layer.moving_mean, layer.moving_variance)]


def _trained_weights(generator: keras.Model) -> list[np.ndarray]:
    return [variable.numpy() for variable in generator.trainable_weights]


def test_saved_dcgan_generator_has_standing_statistics(prepared_digits, tmp_path, mlflow_store):
    cfg = shrunk_params(train={"arch": "dcgan", "augment": [], "epochs": 1, "ema_decay": 0.9, "r1_weight": 0.0,
                               "checkpoint_every_steps": 1000, "sample_every_epochs": 1000,
                               "monitor_every_epochs": None}).train
    result = train.run(cfg, prepared_digits, tmp_path / "gan", tmp_path / "checkpoints", say=lambda _: None)
    ema = result.gan.ema_generator
    saved = sampling.load_generator(tmp_path / "gan" / artifacts.ModelFolder.GENERATOR_FILE)

    for mine, theirs in zip(_trained_weights(saved), _trained_weights(ema), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    averaged = _statistics(ema)
    assert len(averaged) == 6
    assert all(not np.allclose(mine, theirs, rtol=1e-3) for mine, theirs in zip(_statistics(saved), averaged, strict=False))
    # Standing statistics are a fixed point of their recompute (same seed): averaged ones would move.
    written = _statistics(saved)
    standing.recompute_batchnorm_statistics(saved, seed=cfg.seed)
    for again, kept in zip(_statistics(saved), written, strict=True):
        np.testing.assert_allclose(again, kept, rtol=1e-5, atol=1e-7)

    # The checkpoint holds the EMA as trained, averaged statistics included.
    fresh = train.build_gan(cfg, saved.output_shape[1:])
    checkpoint.latest(tmp_path / "checkpoints").restore(fresh)
    for mine, theirs in zip(fresh.ema_generator.get_weights(), ema.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
