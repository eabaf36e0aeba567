import pytest

from pipeline import progress
from pipeline.progress import Progress


def test_a_line_says_how_far_how_fast_and_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 40.0, 50.0, 90.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    bar = Progress("embedding", 1000, lines.append, unit="texts", every=30)
    bar.advance(200)  # 40 s in, 5 a second: 800 left take 160 s, a line
    bar.advance(50)  # 10 s after it: none
    bar.advance(250, note="loss 0.5")  # 90 s in, 500 done: 5.6 a second, 90 s left
    assert lines == ["embedding: [200/1000] 20% (5.0 texts/s), about 3 min left",
                     "embedding: [500/1000] 50% (5.6 texts/s), about 90 s left; loss 0.5"]


def test_a_step_shorter_than_the_interval_logs_nothing() -> None:
    lines: list[str] = []
    bar = Progress("reading", 10, lines.append, every=30)
    for _ in range(10):
        bar.advance()
    assert lines == []
