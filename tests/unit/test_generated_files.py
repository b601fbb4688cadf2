"""Files made by a make target and committed: each must match its source."""

from __future__ import annotations

import gettext
import io
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = sorted(ROOT.glob("*/translations/*/LC_MESSAGES/messages.po"))


def test_the_configuration_reference_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config-reference"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr


def test_there_are_catalogs_for_the_pages_and_the_provider() -> None:
    assert {p.relative_to(ROOT).parts[0] for p in CATALOGS} == {"consent_ui", "idp"}


@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_compiled_catalog_matches_its_source(po: Path) -> None:
    with po.open("rb") as fh:
        catalog = read_po(fh)
    fresh = io.BytesIO()
    write_mo(fresh, catalog)
    fresh.seek(0)
    with po.with_suffix(".mo").open("rb") as fh:
        committed = gettext.GNUTranslations(fh)

    assert gettext.GNUTranslations(fresh)._catalog == committed._catalog  # type: ignore[attr-defined]


@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_placeholder_survives_translation(po: Path) -> None:
    import re

    with po.open("rb") as fh:
        catalog = read_po(fh)
    for message in catalog:
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"%\(\w+\)s|\{\w+\}", ids[0]))
        for string in strings:
            assert set(re.findall(r"%\(\w+\)s|\{\w+\}", string)) == wanted, message.id
