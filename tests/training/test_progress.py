"""The train stage's progress line stays readable at any epoch count: the first and last epoch and every
monitor point, and between them one line every a 50th of the epochs once `min_seconds` passed."""

from __future__ import annotations

import io

import keras

from ganops.training import callbacks

STEPS_PER_EPOCH = 3


class _Gan:
    """What the progress line reads of the GAN: its step counter and the stop flag."""

    def __init__(self):
        self.steps_done = keras.Variable(0, dtype="int64", trainable=False)
        self.stop_training = False


def _shown_epochs(epochs: int, min_seconds: float, stop_after: int | None = None, monitor_every: int = 50) -> list[int]:
    out = io.StringIO()
    progress = callbacks.ProgressLine(epochs, epochs * STEPS_PER_EPOCH, batch_size=64, stream=out,
                                      min_seconds=min_seconds)
    gan = _Gan()
    progress.set_model(gan)
    progress.on_train_begin()
    for epoch in range(epochs):
        progress.on_epoch_begin(epoch)
        gan.steps_done.assign_add(STEPS_PER_EPOCH)
        progress.on_train_batch_end(int(gan.steps_done.numpy()))
        gan.stop_training = epoch + 1 == stop_after
        logs = {"d_loss": 1.0, "g_loss": 0.5}
        if (epoch + 1) % monitor_every == 0:
            logs[callbacks.QualityMonitor.PREFIX + "fd_ratio"] = 3.0
        progress.on_epoch_end(epoch, logs)
        if gan.stop_training:
            break
    progress.on_train_end()
    lines = out.getvalue().splitlines()
    assert all(line.startswith("epoch ") and " img/s " in line for line in lines)
    return [int(line.split()[1].split("/")[0]) for line in lines]


def test_600_epochs_print_under_100_lines_with_first_last_and_monitor_points():
    shown = _shown_epochs(600, min_seconds=0.0)
    assert shown[0] == 1 and shown[-1] == 600 and shown == sorted(set(shown))
    assert set(range(50, 601, 50)) <= set(shown)
    assert max(b - a for a, b in zip(shown, shown[1:])) == 12  # every 600 // 50 epochs when time allows
    assert len(shown) < 100


def test_fast_epochs_wait_for_min_seconds():
    # All 600 epochs in well under 10 s: only the first, the monitor points and the last.
    assert _shown_epochs(600, min_seconds=10.0) == [1, *range(50, 601, 50)]


def test_a_stopped_run_shows_its_last_epoch():
    assert _shown_epochs(600, min_seconds=10.0, stop_after=77) == [1, 50, 77]
