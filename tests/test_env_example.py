"""`.env.example` documents every variable the settings read (other apps' settings included)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READER = re.compile(r"env(?:str|bool|int|list)\(\s*\"([A-Z0-9_]+)\"")


def test_every_variable_the_settings_read_is_in_env_example():
    read = set()
    for path in (ROOT / "parkinghq" / "settings").glob("*.py"):
        read |= set(READER.findall(path.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    missing = sorted(read - documented)
    assert not missing, f"add these to .env.example with a comment: {', '.join(missing)}"
