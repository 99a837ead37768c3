"""Names that look alike: one key for every spelling a person could not tell apart.

``root`` spelt with two CYRILLIC SMALL LETTER O, or followed by an invisible
COMBINING GRAPHEME JOINER (U+034F), looks exactly like ``root``; registered as
separate users, such names let one person pass for another.  Two rules stop that:

* the *skeleton* of Unicode Technical Standard #39, section 4 (Confusable Detection):
  ``NFD``, drop default-ignorable code points, replace each character by the prototype
  that ``confusables.txt`` gives for it, ``NFD`` again.  Two strings are confusable
  when their skeletons are equal.  The data file is Unicode's own
  ``confusables.txt`` (version 13.0.0, unmodified, in ``passport/data``): no
  maintained Python package computes skeletons (PyICU has no wheels);
* RFC 8265 section 3.3 (PRECIS ``UsernameCaseMapped``, through the ``precis-i18n``
  package) decides which characters a username may hold at all: no default-ignorable
  (invisible) code points, no joiners, no mixed-direction text.

Skeletons are for comparing only, never for display (UTS #39 section 4); Passport
stores the SHA-256 of a name's folded skeleton (:func:`lookalike_key`) in a unique
column, so the database itself refuses a second name that looks like the first.
Module of plain functions without other Passport imports: the storage layer uses it
for the column's default.
"""

from __future__ import annotations

import hashlib
import string
import unicodedata
from functools import cache
from importlib.resources import files

import precis_i18n
from precis_i18n.unicode import UnicodeData

_UCD = UnicodeData()
_USERNAME_PROFILE = precis_i18n.get_profile("UsernameCaseMapped")
_CONFUSABLES = "confusables.txt"


@cache
def prototypes() -> dict[str, str]:
    """``confusables.txt``: each source character and the prototype it looks like."""
    text = files("passport.data").joinpath(_CONFUSABLES).read_text(encoding="utf-8-sig")
    table: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 3:
            continue
        source = "".join(chr(int(cp, 16)) for cp in fields[0].split())
        target = "".join(chr(int(cp, 16)) for cp in fields[1].split())
        table[source] = target
    if len(table) < 6000:  # a damaged or truncated data file must not weaken the rule
        raise RuntimeError("passport/data/confusables.txt is incomplete")
    return table


def is_default_ignorable(char: str) -> bool:
    """Unicode's Default_Ignorable_Code_Point: drawn as nothing at all (U+034F, U+200D...)."""
    return bool(_UCD.default_ignorable(ord(char)))


def without_ignorables(text: str) -> str:
    return "".join(c for c in text if not is_default_ignorable(c))


def skeleton(text: str) -> str:
    """UTS #39 section 4 ``skeleton(X)`` (with the default-ignorable removal of 15.1)."""
    table = prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    mapped = "".join(table.get(c, c) for c in decomposed if not is_default_ignorable(c))
    return unicodedata.normalize("NFD", mapped)


def fold(name: str) -> str:
    """Any letter case, any width: NFKC, casefold, NFKC (as names were always compared)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


@cache
def capital_lookalikes() -> dict[str, str]:
    """Capitals of other scripts that look like a Latin capital, to that capital (Cyrillic
    capital TE U+0422 and Greek TAU U+03A4 to T, Cyrillic U+0406 to I).  Folding first
    would lose them: the lower case of U+0422 looks like a small-capital T, not like t
    (UTS #39 §4 skeletons are case-sensitive; names are shown as typed, so "ROOT" spelled
    with a Cyrillic TE must meet "ROOT")."""
    table = prototypes()
    latin = {table.get(capital, capital): capital for capital in string.ascii_uppercase}
    return {
        source: latin[target]
        for source, target in table.items()
        if len(source) == 1
        and not source.isascii()
        and source != source.casefold()
        and target in latin
    }


def lookalike_key(name: str) -> str:
    """SHA-256 (hex) of the folded skeleton: equal for names that look alike in any case.

    The skeleton is folded again (prototypes include capitals: ``0`` looks like ``O``)
    until nothing changes, so the key does not depend on the order of the two rules.
    A fixed-length hex key also keeps MariaDB's collations (case- and
    trailing-space-insensitive) out of the comparison.
    """
    capitals = capital_lookalikes()
    spelled = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", name))
    current = fold("".join(capitals.get(c, c) for c in spelled))
    for _ in range(4):
        following = fold(skeleton(current))
        if following == current:
            break
        current = following
    return hashlib.sha256(current.encode("utf-8", "surrogatepass")).hexdigest()


def username_problem(name: str) -> str | None:
    """Why ``name`` (already NFKC) is no acceptable username under RFC 8265, or None."""
    if any(is_default_ignorable(c) for c in name):
        return "Username must not contain invisible characters."
    try:
        _USERNAME_PROFILE.enforce(name)
    except UnicodeEncodeError as exc:
        if exc.reason.endswith("bidi_rule"):
            return "Username must not mix left-to-right and right-to-left text."
        return "Username may contain letters, digits, '.', '_' and '-' only."
    return None
