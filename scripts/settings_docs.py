"""Check, or with --write rewrite, what is written from countries/setting_docs.py: `.env.example`
and the settings table of docs/configuration.md (between its markers). `--help` is written from
the same table when it runs. Exit 1 naming each file that disagrees.

    python scripts/settings_docs.py           # check (CI)
    python scripts/settings_docs.py --write   # rewrite both files
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from countries import setting_docs  # noqa: E402

ENV_EXAMPLE = REPO / ".env.example"
CONFIGURATION = REPO / "docs" / "configuration.md"


def expected() -> dict[Path, str]:
    return {
        ENV_EXAMPLE: setting_docs.env_example(),
        CONFIGURATION: setting_docs.with_table(CONFIGURATION.read_text()),
    }


def main(argv: list[str]) -> int:
    write = "--write" in argv
    stale = []
    for path, text in expected().items():
        if path.read_text() == text:
            continue
        if write:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
        else:
            stale.append(path.relative_to(REPO))
    for path in stale:
        print(
            f"{path} disagrees with countries/setting_docs.py: run scripts/settings_docs.py --write"
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
