import numpy as np

from ganops import artifacts
from ganops.config import TrainConfig
from ganops.data import prepare
from ganops.training import train as train_lib

TINY = TrainConfig(epochs=2, batch_size=32, base_filters=8, latent_dim=16, ema_decay=0.9)


def test_short_training_updates_generator_and_ema(prepared_digits):
    split = artifacts.read_split(prepared_digits / prepare.TRAIN_FILE)
    result = train_lib.train(TINY, split)
    assert list(result.history.columns) == ["epoch", "d_loss", "g_loss", "seconds"]
    assert len(result.history) == 2 and np.isfinite(result.history[["d_loss", "g_loss"]]).all().all()
    assert result.steps == 2 * (len(split) // 32)
    images = np.asarray(result.gan.ema_generator(np.zeros((4, 16), np.float32)))
    assert images.shape == (4, 8, 8, 1) and np.abs(images).max() <= 1.0
    live = result.gan.generator.get_weights()[0]
    ema = result.gan.ema_generator.get_weights()[0]
    assert not np.allclose(live, ema)  # the EMA lags the live weights


def test_time_budget_stops_training_early(prepared_digits):
    split = artifacts.read_split(prepared_digits / prepare.TRAIN_FILE)
    result = train_lib.train(TINY.model_copy(update={"epochs": 1000, "max_seconds": 2.0}), split)
    assert result.stopped_by_budget
    assert len(result.history) < 1000
