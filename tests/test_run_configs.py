"""Every run configuration the project ships is one the answer job accepts: a misspelt field or
a value of the wrong type fails here, not on a user's GPU an hour into a run."""

from pathlib import Path

import pytest
import yaml
from dagster import DagsterInvalidConfigError, validate_run_config

from definitions import defs
from pipeline.paths import PROJECT_ROOT

CONFIGS = sorted(p for p in (PROJECT_ROOT / "config").glob("*.yaml") if p.name != "dagster.yaml")


def _merged(base: dict, over: dict) -> dict:
    """``over`` deep-merged into ``base``, as ``make run`` passes the two files."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (_merged(out[key], value) if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_shipped_run_config_is_valid_for_the_answer_job(path: Path) -> None:
    job = defs.resolve_job_def("answer_job")
    default = yaml.safe_load((PROJECT_ROOT / "config" / "answer_job.yaml").read_text())
    validate_run_config(job, _merged(default, yaml.safe_load(path.read_text())))


def test_a_misspelt_field_is_refused() -> None:
    job = defs.resolve_job_def("answer_job")
    with pytest.raises(DagsterInvalidConfigError):
        validate_run_config(job, {"ops": {"cascade": {"config": {"shares": 1.0}}}})
