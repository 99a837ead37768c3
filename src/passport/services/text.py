"""Free text that people and administrators set: nothing that hides, reorders or rewrites it.

One rule, :func:`check_text`, for every free-text field a person or an administrator
sets — display names, emails, and the descriptions of groups, applications and
permissions.  Without it, a delegated administrator could store
``"\\x1b]0;PWNED\\x07\\x1b[2J"`` (terminal escape sequences: retitle the window, clear
the screen) or a RIGHT-TO-LEFT OVERRIDE that makes ``exe.txt`` read as ``txt.exe``;
the CLI prints such text escaped, but every other consumer of the API, of the
ID tokens and of the pages receives the raw sequences.

The standards behind it:

* Unicode Standard Annex #9 (the Bidirectional Algorithm, TR #9), sections 2.1-2.6:
  the explicit embedding, override and isolate controls (U+202A-U+202E,
  U+2066-U+2069) and the implicit marks (U+200E, U+200F, U+061C) change the order in
  which *following* text is shown, beyond the field they were typed in;
* Unicode Technical Report #36 (Unicode Security Considerations) section 2 (visual
  security issues; and 3.5: refuse, do not silently delete, what is not allowed) and
  Unicode Technical Standard #39 (Unicode Security Mechanisms) section 3.1 (General
  Security Profile): default-ignorable code points are drawn as nothing,
  so they hide differences between strings (``pay\\u200bpal``) or data
  (text "smuggled" in tag characters or runs of variation selectors); unassigned,
  private-use and surrogate code points have no agreed meaning or rendering;
* OWASP ASVS 5.0, V1 "Encoding and Sanitization" and V2 "Validation and Business
  Logic" (input validation with allow lists, at a trusted service layer, with the
  same rule for every entry point): the rule lives in the service layer, which the
  JSON API, the CLI, the pages and the importer all call, and refuses the value
  (nothing is silently removed from it).

What is refused, in every field (the message names the field and the character's
code point, and the error's ``source`` is the field):

* C0 and C1 control characters and DEL (Unicode category ``Cc``); multi-line fields
  (descriptions) keep TAB and LF, one-line fields refuse them too (CR is refused: the
  description rule turns CR LF into LF before it calls this one);
* LINE SEPARATOR and PARAGRAPH SEPARATOR (U+2028, U+2029; LF is the line break);
* the bidi controls and marks above;
* default-ignorable code points (``Default_Ignorable_Code_Point``, which includes
  U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER, U+FEFF, U+00AD SOFT HYPHEN, U+034F, the
  Hangul fillers U+115F, U+1160, U+3164, U+FFA0...) and the interlinear annotation
  characters U+FFF9-U+FFFB, except the *shaping* characters listed below;
* unassigned code points and noncharacters (``Cn``, in the Unicode version of the
  running Python: ``unicodedata.unidata_version``), private-use characters (``Co``) and
  lone surrogates (``Cs``).

The *shaping* characters, allowed only in text meant for people (``shaping=True``:
display names and descriptions), because writing systems and emoji need them:

* ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER (U+200C, U+200D): Persian, Indic scripts
  (Devanagari half forms, Malayalam chillus) and emoji ZWJ sequences (👩‍💻);
* one variation selector (U+FE00-U+FE0F, U+E0100-U+E01EF) or Mongolian free variation
  selector (U+180B-U+180D, U+180F) right after a visible character (❤️, ideographic
  variation sequences, Mongolian); a selector at the start or after another selector is
  refused, which stops data hidden in runs of selectors;
* tag characters only inside an emoji tag sequence of UTS #51 (U+1F3F4, tags
  U+E0020-U+E007E, CANCEL TAG U+E007F: the flags of Scotland or Wales);
* format characters that are drawn (prepended concatenation marks such as ARABIC
  NUMBER SIGN U+0600, Egyptian hieroglyph format controls).

Identifiers-like fields (``shaping=False``: emails) refuse all of these too.  Names of
users, groups, applications and permissions have their own, stricter rules (letters,
digits and a few marks; no ``C*`` category and nothing default-ignorable at all), which
already refuse everything listed here.

Existing data is not migrated: rows stored before this rule keep their text; the rule
applies when a field is set or changed (a change of another field of the same object
does not re-check it).
"""

from __future__ import annotations

import re
import unicodedata

from passport.errors import Invalid
from passport.lookalikes import is_default_ignorable

BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e"  # LRE RLE LRO RLO PDF (TR #9 §2.1-2.3)
    "\u2066\u2067\u2068\u2069"  # LRI RLI FSI PDI (TR #9 §2.4, §2.5)
    "\u200e\u200f\u061c"  # LRM RLM ALM (TR #9 §2.6)
)
JOINERS = frozenset("\u200c\u200d")
LINE_BREAKS = frozenset("\t\n")  # the only controls multi-line text keeps
_ANNOTATION = frozenset("\ufff9\ufffa\ufffb")
_SEPARATORS = frozenset("\u2028\u2029")
# UTS #51 §2.3 emoji tag sequence (the RGI ones: subdivision flags on BLACK FLAG).
_TAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")


def _is_selector(char: str) -> bool:
    cp = ord(char)
    return (
        0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF or 0x180B <= cp <= 0x180D or cp == 0x180F
    )


def _is_noncharacter(cp: int) -> bool:
    return 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE


def _visible_base(char: str) -> bool:
    """A character a variation selector may follow: drawn, not a separator or control."""
    return unicodedata.category(char)[0] not in "CZ" and not is_default_ignorable(char)


def _refusal(text: str, *, multiline: bool, shaping: bool) -> tuple[str, str] | None:
    """The first refused character of ``text`` and why (what it is), or None."""
    in_tags: set[int] = set()
    if shaping:
        for match in _TAG_SEQUENCE.finditer(text):
            in_tags.update(range(match.start() + 1, match.end()))
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        cp = ord(char)
        if category == "Cc":
            if multiline and char in LINE_BREAKS:
                continue
            return char, "a control character"
        if category == "Cs":
            return char, "a lone surrogate"
        if category == "Co":
            return char, "a private-use character"
        if category == "Cn":
            return char, "a noncharacter" if _is_noncharacter(cp) else "an unassigned code point"
        if char in BIDI_CONTROLS or char in _SEPARATORS or char in _ANNOTATION:
            return char, unicodedata.name(char)
        if char in JOINERS:
            if shaping:
                continue
            return char, unicodedata.name(char)
        if _is_selector(char):
            if shaping and index > 0 and _visible_base(text[index - 1]):
                continue
            return char, unicodedata.name(char)
        if index in in_tags:
            continue
        if is_default_ignorable(char) or (category == "Cf" and not shaping):
            return char, unicodedata.name(char, "an invisible character")
    return None


def check_text(
    text: str, *, field: str, source: str, multiline: bool = False, shaping: bool = True
) -> str:
    """``text`` unchanged, or :class:`~passport.errors.Invalid` naming ``field`` and the
    first refused character: control, bidi and invisible characters, unassigned,
    private-use and surrogate code points (see the module's docstring for the list,
    the standards — Unicode TR #9, TR #36, UTS #39, OWASP ASVS 5 — and what ``multiline``
    and ``shaping`` allow).  ``source`` is the error's source (the API parameter)."""
    refused = _refusal(text, multiline=multiline, shaping=shaping)
    if refused is None:
        return text
    char, what = refused
    code = f"U+{ord(char):04X}"
    if _is_selector(char) and shaping:
        what += ", other than once right after a visible character"
    raise Invalid(f"{field} must not contain {code} ({what}).", source=source, value=code)
