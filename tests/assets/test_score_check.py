"""The score's regression check picks its baseline among earlier scores."""

from dagster import MetadataValue

from assets.answering import previous_score


def _score(fingerprint: str, value: float) -> dict:
    return {"fingerprint": MetadataValue.text(fingerprint), "map_at_3": MetadataValue.float(value),
            "map_at_3_low": MetadataValue.float(value - 0.05)}


def test_the_baseline_is_the_last_score_from_other_inputs() -> None:
    """A regressed score re-materialised with nothing changed must still be compared with the
    score before the regression, not with itself."""
    regressed = _score("f2", 0.50)
    earlier = [_score("f2", 0.50), _score("f2", 0.50), _score("f1", 0.70), _score("f0", 0.40)]
    index, baseline = previous_score(regressed, earlier)
    assert index == 2 and baseline["map_at_3"].value == 0.70


def test_no_baseline_when_every_earlier_score_had_the_same_inputs() -> None:
    assert previous_score(_score("f1", 0.7), [_score("f1", 0.7)]) is None
    assert previous_score(_score("f1", 0.7), []) is None
