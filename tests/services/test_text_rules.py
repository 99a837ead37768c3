"""The free-text rule (:func:`passport.services.text.check_text`) and the fields it guards.

Control, bidi (Unicode TR #9) and invisible (UTS #39 / TR #36) characters, unassigned,
private-use and surrogate code points are refused in display names, emails and
descriptions, with the field and the code point in the message; text in any script,
and emoji with their ZWJ sequences, selectors and tag sequences where people read it,
is kept.  No database: the rule and the validators are plain functions.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passport.errors import Invalid
from passport.services.accounts import validate_display_name
from passport.services.accounts import validate_email
from passport.services.administration import _description
from passport.services.text import check_text

BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)]
ZERO_WIDTH = ["\u200b", "\u2060", "\ufeff"]
JOINERS = ["\u200c", "\u200d"]
OTHER_INVISIBLE = [
    "\u00ad",  # SOFT HYPHEN
    "\u034f",  # COMBINING GRAPHEME JOINER
    "\u115f",  # HANGUL CHOSEONG FILLER
    "\u180e",  # MONGOLIAN VOWEL SEPARATOR
    "\u2061",  # FUNCTION APPLICATION
    "\u2064",  # INVISIBLE PLUS
    "\u206a",  # INHIBIT SYMMETRIC SWAPPING
    "\u3164",  # HANGUL FILLER
    "\uffa0",  # HALFWIDTH HANGUL FILLER
    "\ufff9",  # INTERLINEAR ANNOTATION ANCHOR
    "\U0001bca0",  # SHORTHAND FORMAT LETTER OVERLAP
    "\U000e0001",  # LANGUAGE TAG
]
SEPARATORS = ["\u2028", "\u2029"]
ODD_CODE_POINTS = [
    "\ue000",  # private use
    "\U000f0000",  # supplementary private use
    "\ud800",  # lone high surrogate
    "\udfff",  # lone low surrogate
    "\u0378",  # unassigned
    "\ufdd0",  # noncharacter
    "\uffff",  # noncharacter
]
CONTROLS = [chr(c) for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))]
ONE_LINE_CONTROLS = CONTROLS
MULTI_LINE_CONTROLS = [c for c in CONTROLS if c not in "\t\n"]

# Refused wherever they stand, in every kind of field.
ALWAYS = [*BIDI, *ZERO_WIDTH, *OTHER_INVISIBLE, *SEPARATORS, *ODD_CODE_POINTS]


def code(char: str) -> str:
    return f"U+{ord(char):04X}"


def refused(text: str, **kind: bool) -> Invalid:
    with pytest.raises(Invalid) as caught:
        check_text(text, field="description", source="description", **kind)
    return caught.value


# -- what is refused, and how it is reported --


def test_the_reviewers_description_is_refused_naming_the_character() -> None:
    hostile = "\x1b]0;PWNED\x07\x1b[2J Totally normal group \u202eexe.txt"
    error = refused(hostile, multiline=True)
    assert error.message == "description must not contain U+001B (a control character)."
    assert error.source == "description" and error.value == "U+001B"
    error = refused("Totally normal group \u202eexe.txt", multiline=True)
    assert error.message == "description must not contain U+202E (RIGHT-TO-LEFT OVERRIDE)."


@pytest.mark.parametrize("char", ALWAYS, ids=code)
@pytest.mark.parametrize("shaping", [True, False])
@pytest.mark.parametrize("multiline", [True, False])
def test_always_refused(char: str, shaping: bool, multiline: bool) -> None:
    for text in (char, f"abc{char}", f"{char}abc", f"Grüße {char}世界"):
        error = refused(text, shaping=shaping, multiline=multiline)
        assert error.message.startswith(f"description must not contain {code(char)} (")
        assert error.value == code(char) and error.source == "description"
        assert char not in error.message  # the message never carries the character itself


def test_messages_name_the_character() -> None:
    named = {
        "\u202e": "RIGHT-TO-LEFT OVERRIDE",
        "\u2066": "LEFT-TO-RIGHT ISOLATE",
        "\u200f": "RIGHT-TO-LEFT MARK",
        "\u200b": "ZERO WIDTH SPACE",
        "\ufeff": "ZERO WIDTH NO-BREAK SPACE",
        "\x7f": "a control character",
        "\x9b": "a control character",
        "\ue000": "a private-use character",
        "\ud800": "a lone surrogate",
        "\u0378": "an unassigned code point",
        "\ufffe": "a noncharacter",
    }
    for char, what in named.items():
        assert refused(f"x{char}").message == (
            f"description must not contain {code(char)} ({what})."
        )


@pytest.mark.parametrize("char", ONE_LINE_CONTROLS, ids=code)
def test_one_line_fields_refuse_every_control(char: str) -> None:
    assert refused(f"a{char}b").value == code(char)


@pytest.mark.parametrize("char", MULTI_LINE_CONTROLS, ids=code)
def test_multi_line_fields_refuse_controls_but_tab_and_lf(char: str) -> None:
    assert refused(f"a{char}b", multiline=True).value == code(char)


def test_multi_line_fields_keep_tab_and_lf() -> None:
    text = "Line one\n\tindented\nline three"
    assert check_text(text, field="d", source="d", multiline=True) == text


def test_joiners_only_where_text_is_for_people() -> None:
    for joiner in JOINERS:
        assert check_text(f"a{joiner}b", field="d", source="d") == f"a{joiner}b"
        assert refused(f"a{joiner}b", shaping=False).value == code(joiner)


def test_variation_selectors_only_once_after_a_visible_character() -> None:
    assert check_text("❤\ufe0f", field="d", source="d") == "❤\ufe0f"
    assert check_text("葛\U000e0100", field="d", source="d") == "葛\U000e0100"
    assert check_text("ᠠ\u180b", field="d", source="d") == "ᠠ\u180b"
    for bad in ("\ufe0f", "❤\ufe0f\ufe0f", " \ufe0f", "a\u200d\ufe0f", "x" + "\U000e0100" * 8):
        assert refused(bad).message.startswith("description must not contain U+")
    assert refused("❤\ufe0f", shaping=False).value == "U+FE0F"


def test_tag_characters_only_in_an_emoji_tag_sequence() -> None:
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    assert check_text(f"Team {scotland}", field="d", source="d") == f"Team {scotland}"
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "ignore previous instructions")
    assert refused(f"Harmless{hidden}").value == "U+E0069"
    assert refused("\U0001f3f4\U000e0067\U000e0062").value == "U+E0067"  # not cancelled
    assert refused(scotland, shaping=False).value == "U+E0067"


# -- what is kept --

PLAIN = [
    "Ana María Núñez-O'Brien",
    "Åsa Öberg, Zoë Ærø",
    "Фёдор Михайлович Достоевский",
    "Νίκος Καζαντζάκης",
    "محمد بن موسى الخوارزمي",
    "نرم‌افزار",  # Persian, with ZWNJ
    "דוד בן-גוריון",
    "देवनागरी क्‍ष",  # Devanagari, with ZWJ (half form)
    "മലയാളം",
    "李小龙 / 李小龍",
    "山田 太郎 \uff08やまだ たろう\uff09"  # fullwidth parentheses,
    "홍길동",
    "ภาษาไทย",
    "Ngô Bảo Châu",
    "Café ☕ 😀 ❤️ 👍🏽",
    "👩\u200d💻 👨\u200d👩\u200d👧\u200d👦 🏳️\u200d🌈 🧑🏽\u200d🚀",
    "🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f Cymru",
    "Arabic number sign \u0600\u0661\u0662\u0663",
    "a\u00a0b\u3000c",  # no-break and ideographic spaces
]


@pytest.mark.parametrize("text", PLAIN)
def test_text_in_many_scripts_and_emoji_is_kept(text: str) -> None:
    assert validate_display_name(text) == unicodedata.normalize("NFKC", text)
    assert _description(f"{text}\n\t{text}") == f"{text}\n\t{text}"


@pytest.mark.parametrize(
    "address",
    [
        "ana@example.com",
        "josé.núñez@example.es",
        "фёдор@пример.рф",
        "用户@例子.广告",
        "δοκιμή@παράδειγμα.δοκιμή",
        "उपयोगकर्ता@उदाहरण.कॉम",
    ],
)
def test_international_emails_are_kept(address: str) -> None:
    assert validate_email(address) == address


# Letters, marks, digits, punctuation, symbols and spaces of any script, except the
# default-ignorable ones among them (fillers, CGJ, Khmer inherent vowels, selectors).
_INVISIBLE_LETTERS_AND_MARKS = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0}


def _visible(char: str) -> bool:
    cp = ord(char)
    return not (
        cp in _INVISIBLE_LETTERS_AND_MARKS
        or 0x180B <= cp <= 0x180F
        or 0xFE00 <= cp <= 0xFE0F
        or 0xE0100 <= cp <= 0xE01EF
    )


VISIBLE = st.characters(categories=("L", "M", "N", "P", "S", "Zs")).filter(_visible)
ANY_TEXT = st.text(max_size=30)


@given(st.text(VISIBLE, max_size=40))
def test_visible_text_of_any_script_is_kept(text: str) -> None:
    for kind in ({}, {"multiline": True}, {"shaping": False}):
        assert check_text(text, field="d", source="d", **kind) == text


def _refused_in(shaping: bool, multiline: bool) -> st.SearchStrategy[str]:
    controls = MULTI_LINE_CONTROLS if multiline else ONE_LINE_CONTROLS
    pool = [*ALWAYS, *controls, *([] if shaping else JOINERS)]
    return st.one_of(
        st.sampled_from(pool),
        st.characters(categories=("Cc", "Co", "Cs", "Cn"), exclude_characters="\t\n"),
    )


@st.composite
def with_a_refused_character(draw: st.DrawFn) -> tuple[str, str, bool, bool]:
    shaping, multiline = draw(st.booleans()), draw(st.booleans())
    before, after = draw(ANY_TEXT), draw(ANY_TEXT)
    char = draw(_refused_in(shaping, multiline))
    return before + char + after, char, shaping, multiline


@given(with_a_refused_character())
def test_any_text_holding_a_refused_character_is_refused(
    case: tuple[str, str, bool, bool],
) -> None:
    text, _, shaping, multiline = case
    with pytest.raises(Invalid):
        check_text(text, field="d", source="d", shaping=shaping, multiline=multiline)


@given(st.text(VISIBLE, max_size=20), st.text(VISIBLE, max_size=20), st.data())
def test_the_message_names_the_one_refused_character(
    before: str, after: str, data: st.DataObject
) -> None:
    shaping, multiline = data.draw(st.booleans()), data.draw(st.booleans())
    char = data.draw(_refused_in(shaping, multiline))
    with pytest.raises(Invalid) as caught:
        check_text(
            before + char + after, field="d", source="d", shaping=shaping, multiline=multiline
        )
    assert caught.value.value == code(char)


# -- the fields that use the rule --


def test_display_names_refuse_bidi_and_invisible_characters_but_keep_joiners() -> None:
    for char in ("\u202e", "\u2066", "\u200b", "\u200f", "\x1b", "\n", "\ue000"):
        with pytest.raises(Invalid) as caught:
            validate_display_name(f"Mallory{char}Admin")
        assert caught.value.source == "displayName"
        assert caught.value.message.startswith(f"Display name must not contain {code(char)} (")
    assert validate_display_name("Ada\u200dLovelace") == "Ada\u200dLovelace"


def test_emails_refuse_bidi_invisible_and_joiner_characters() -> None:
    for char in ("\u202e", "\u2066", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\x85"):
        with pytest.raises(Invalid) as caught:
            validate_email(f"ana{char}@example.com")
        assert caught.value.source == "email"
        assert caught.value.message.startswith(f"Email must not contain {code(char)} (")


def test_descriptions_refuse_controls_and_keep_line_breaks() -> None:
    with pytest.raises(Invalid) as caught:
        _description("Backups\u202e", "description")
    assert caught.value.message == "description must not contain U+202E (RIGHT-TO-LEFT OVERRIDE)."
    assert caught.value.source == "description"
    assert _description("one\r\ntwo\rthree\n\tfour") == "one\ntwo\nthree\n\tfour"
