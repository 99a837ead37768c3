"""docs/forward-auth.md shows each shipped proxy configuration in full: the copies there
are the files of docs/forward-auth/ (which the live tests run), never an older draft."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize(
    ("language", "name"),
    [("nginx", "nginx.conf"), ("caddyfile", "Caddyfile"), ("yaml", "traefik.yml")],
)
def test_the_guide_shows_the_shipped_configuration(language: str, name: str) -> None:
    guide = (DOCS / "forward-auth.md").read_text()
    shown = re.findall(rf"^```{language}\n(.*?)^```$", guide, re.S | re.M)
    assert shown == [(DOCS / "forward-auth" / name).read_text()]
