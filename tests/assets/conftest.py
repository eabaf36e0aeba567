import pytest

from tests.assets.counted_work import Counted


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Counted:
    """The domain work the test's runs do, counted (:class:`Counted`)."""
    return Counted(monkeypatch)
