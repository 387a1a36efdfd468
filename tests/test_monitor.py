"""monitor.Progress: the bar's rates are tqdm's live ones, and its ETA shows from the first step."""
import io
import re

import pytest

import monitor

# "... 4.00step/s, 16 img/s, run ETA 0:00:10]" as tqdm draws it: the step rate, then the postfix.
RATES = re.compile(r"([\d.]+)step/s, ([\d,]+) img/s, (?:loss [\d.]+, )?run ETA (\d+):(\d\d):(\d\d)")


class Clock:
    """A clock for tqdm that moves only when told."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    import tqdm.std
    fake = Clock()
    monkeypatch.setattr(tqdm.std, "time", fake)
    return fake


def drawn(progress):
    """The bar as tqdm would draw it now: (steps/s, img/s, run ETA in seconds)."""
    m = RATES.search(str(progress.bar))
    assert m, str(progress.bar)
    h, mi, s = (int(g) for g in m.group(3, 4, 5))
    return float(m.group(1)), int(m.group(2).replace(",", "")), 3600 * h + 60 * mi + s


def test_images_per_second_is_steps_per_second_times_the_batch_at_every_step(clock):
    progress = monitor.Progress(True, epochs=2, steps=20, batch_size=4, stream=io.StringIO())
    with progress.epoch(1):
        for seconds in (0.5, 0.5, 0.1, 0.1, 0.1, 2.0):          # the pace changes; no loss line yet
            clock.now += seconds
            progress.step()
            steps, images, _ = drawn(progress)
            assert abs(images - 4 * steps) <= 0.5 + 4 * 0.005
    assert progress.epoch_times


def test_eta_shows_before_any_loss_line_and_counts_the_epochs_left(clock):
    progress = monitor.Progress(True, epochs=3, steps=10, batch_size=8, stream=io.StringIO())
    with progress.epoch(1):
        for _ in range(5):
            clock.now += 1.0                                    # 1 step/s
            progress.step()
        steps, images, eta = drawn(progress)
        # 5 steps left of this epoch and 2 epochs of 10 steps: about 25 s at 1 step/s
        assert steps == pytest.approx(1.0, rel=0.01) and images == 8
        assert 24 <= eta <= 26
        progress.note(2.345)
        assert "loss 2.345" in str(progress.bar)


def test_rate_is_live_not_the_epochs_average(clock):
    progress = monitor.Progress(True, epochs=1, steps=100, batch_size=1, stream=io.StringIO())
    with progress.epoch(1):
        for _ in range(10):                                     # slow start: 1 step/s
            clock.now += 1.0
            progress.step()
        for _ in range(40):                                     # then 10 steps/s
            clock.now += 0.1
            progress.step()
        steps, _, _ = drawn(progress)
        # the epoch's average is 50 steps / 14 s = 3.6 step/s; tqdm's smoothed rate follows the pace
        assert steps > 8


def test_no_bar_without_a_terminal():
    stream = io.StringIO()
    progress = monitor.Progress(None, epochs=1, steps=5, batch_size=4, stream=stream)
    with progress.epoch(1):
        progress.step()
        progress.note(1.0)
        progress.write("[1, 1] loss: 1.000")
    assert stream.getvalue() == "[1, 1] loss: 1.000\n"
