import json
from pathlib import Path

import pytest

DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions"


def engine_available() -> bool:
    try:
        from workflows.services import definition_install  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True)
def _carparks_definitions(request):
    """Install the car-park process definitions before every database test (once the engine exists)."""
    if request.node.get_closest_marker("django_db") is None or not engine_available():
        return
    request.getfixturevalue("django_db_blocker")
    from workflows.services import definition_install

    for path in sorted(DEFINITIONS.glob("*.json")):
        definition_install(spec=json.loads(path.read_text()))
