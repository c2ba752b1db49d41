"""Check and normalize text fields to TCVN 6909:2001 (Unicode, precomposed NFC).

The failure this guards against is old: an agency system still storing Vietnamese in the 8-bit
font encodings of the 1990s (TCVN3/ABC, VNI-Windows) hands us bytes that someone decoded as
Latin-1 or Windows-1252. The result is valid Unicode that no clerk can read ("UBND tØnh
Th¸i Nguyªn", "UÛy ban nhaân daân"). The detector below re-encodes each word to the bytes it
came from, decodes those bytes with the legacy code tables, and asks whether the result is a
well-formed Vietnamese syllable while the word as given is not.
"""

from __future__ import annotations

import functools

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from edxml.errors import EdxmlError

__all__ = [
    "REASONS",
    "LegacyGuess",
    "TextIssue",
    "decode_legacy",
    "detect_legacy_encoding",
    "encode_legacy",
    "inspect_text",
    "is_vietnamese_syllable",
    "normalize_text",
]

REASONS: dict[str, str] = {
    "edxml.text.legacy_encoding": "text looks like TCVN3 (ABC) or VNI-Windows bytes read as Latin-1/Windows-1252",
    "edxml.text.control": "text contains a control character (other than tab, LF, CR) or a non-character",
    "edxml.text.bidi": "text contains a bidirectional override/embedding/isolate character",
    "edxml.text.encoding": "text contains a lone surrogate (it was not decoded correctly)",
}

LegacyEncoding = Literal["tcvn3", "vni"]

# --- Code tables --------------------------------------------------------------------------------
# Each row: a Vietnamese letter without tone, then its forms with sắc, huyền, hỏi, ngã, nặng.
_VOWEL_ROWS: dict[str, str] = {
    "a": "aáàảãạ", "ă": "ăắằẳẵặ", "â": "âấầẩẫậ",
    "e": "eéèẻẽẹ", "ê": "êếềểễệ",
    "i": "iíìỉĩị",
    "o": "oóòỏõọ", "ô": "ôốồổỗộ", "ơ": "ơớờởỡợ",
    "u": "uúùủũụ", "ư": "ưứừửữự",
    "y": "yýỳỷỹỵ",
}

# TCVN 5712:1993 VN3, the "ABC" font encoding (.VnTime): one byte per lowercase letter, in the
# same row order as _VOWEL_ROWS ("a" rows start with the ASCII letter itself).
_TCVN3_ROWS: dict[str, bytes] = {
    "a": b"a\xb8\xb5\xb6\xb7\xb9",
    "ă": b"\xa8\xbe\xbb\xbc\xbd\xc6",
    "â": b"\xa9\xca\xc7\xc8\xc9\xcb",
    "e": b"e\xd0\xcc\xce\xcf\xd1",
    "ê": b"\xaa\xd5\xd2\xd3\xd4\xd6",
    "i": b"i\xdd\xd7\xd8\xdc\xde",
    "o": b"o\xe3\xdf\xe1\xe2\xe4",
    "ô": b"\xab\xe8\xe5\xe6\xe7\xe9",
    "ơ": b"\xac\xed\xea\xeb\xec\xee",
    "u": b"u\xf3\xef\xf1\xf2\xf4",
    "ư": b"\xad\xf8\xf5\xf6\xf7\xf9",
    "y": b"y\xfd\xfa\xfb\xfc\xfe",
}
# VN3 has capitals only for the letters without tone; a capital with a tone was typed with the
# lowercase code and shown in capitals by the ".VnTimeH" fonts.
_TCVN3_CAPITALS: dict[str, int] = {
    "Ă": 0xA1, "Â": 0xA2, "Ê": 0xA3, "Ô": 0xA4, "Ơ": 0xA5, "Ư": 0xA6, "Đ": 0xA7, "đ": 0xAE,
}
# VN1, the full TCVN 5712 table, adds the toned capitals in C0, 0x80-0x9F and a few free slots,
# plus the five combining tone marks at 0xB0-0xB4. Only used when decoding.
_TCVN_VN1_EXTRA: dict[int, str] = {
    0x01: "Ú", 0x02: "Ụ", 0x04: "Ừ", 0x05: "Ử", 0x06: "Ữ", 0x11: "Ứ", 0x12: "Ự", 0x13: "Ỳ",
    0x14: "Ỷ", 0x15: "Ỹ", 0x16: "Ý", 0x17: "Ỵ",
    0x80: "À", 0x81: "Ả", 0x82: "Ã", 0x83: "Á", 0x84: "Ạ", 0x85: "Ặ", 0x86: "Ậ", 0x87: "È",
    0x88: "Ẻ", 0x89: "Ẽ", 0x8A: "É", 0x8B: "Ẹ", 0x8C: "Ệ", 0x8D: "Ì", 0x8E: "Ỉ", 0x8F: "Ĩ",
    0x90: "Í", 0x91: "Ị", 0x92: "Ò", 0x93: "Ỏ", 0x94: "Õ", 0x95: "Ó", 0x96: "Ọ", 0x97: "Ộ",
    0x98: "Ờ", 0x99: "Ở", 0x9A: "Ỡ", 0x9B: "Ớ", 0x9C: "Ợ", 0x9D: "Ù", 0x9E: "Ủ", 0x9F: "Ũ",
    0xAF: "Ằ", 0xBA: "Ẳ", 0xBF: "Ẵ", 0xC0: "Ắ", 0xC1: "Ầ", 0xC2: "Ẩ", 0xC3: "Ẫ", 0xC4: "Ấ",
    0xC5: "Ề", 0xD9: "Ễ", 0xDA: "Ế", 0xDB: "Ồ", 0xE0: "Ổ", 0xF0: "Ỗ", 0xFF: "Ố",
    0xB0: "\u0300", 0xB1: "\u0309", 0xB2: "\u0303", 0xB3: "\u0301", 0xB4: "\u0323",
}

# VNI-Windows: an ASCII base letter followed by one byte for the diacritics (tone, or
# circumflex/breve combined with a tone); i, ỵ, ơ, ư and đ have single-byte forms.
# Mark bytes per row, in the order: no tone, sắc, huyền, hỏi, ngã, nặng (lowercase; the capital
# letters use the capital marks: ù -> Ù, â -> Â, ...).
_VNI_ROWS: dict[str, tuple[str, ...]] = {
    "a": ("a", "aù", "aø", "aû", "aõ", "aï"),
    "ă": ("aê", "aé", "aè", "aú", "aü", "aë"),
    "â": ("aâ", "aá", "aà", "aå", "aã", "aä"),
    "e": ("e", "eù", "eø", "eû", "eõ", "eï"),
    "ê": ("eâ", "eá", "eà", "eå", "eã", "eä"),
    "i": ("i", "í", "ì", "æ", "ó", "ò"),
    "o": ("o", "où", "oø", "oû", "oõ", "oï"),
    "ô": ("oâ", "oá", "oà", "oå", "oã", "oä"),
    "ơ": ("ô", "ôù", "ôø", "ôû", "ôõ", "ôï"),
    "u": ("u", "uù", "uø", "uû", "uõ", "uï"),
    "ư": ("ö", "öù", "öø", "öû", "öõ", "öï"),
    "y": ("y", "yù", "yø", "yû", "yõ", "î"),
}
_VNI_D = ("ñ", "Ñ")  # đ, Đ


def _build_tables() -> tuple[dict[str, bytes], dict[int, str], dict[str, bytes], dict[bytes, str]]:
    tcvn3_enc: dict[str, bytes] = {}
    for base, letters in _VOWEL_ROWS.items():
        for letter, code in zip(letters, _TCVN3_ROWS[base]):
            tcvn3_enc[letter] = bytes([code])
            tcvn3_enc.setdefault(letter.upper(), bytes([code]))
    for letter, code in _TCVN3_CAPITALS.items():
        tcvn3_enc[letter] = bytes([code])
    tcvn3_dec: dict[int, str] = {}
    for base, letters in _VOWEL_ROWS.items():
        for letter, code in zip(letters, _TCVN3_ROWS[base]):
            if code >= 0x80:
                tcvn3_dec[code] = letter
    for letter, code in _TCVN3_CAPITALS.items():
        tcvn3_dec[code] = letter
    for code, ch in _TCVN_VN1_EXTRA.items():
        tcvn3_dec.setdefault(code, ch)

    vni_enc: dict[str, bytes] = {}
    for base, letters in _VOWEL_ROWS.items():
        for letter, seq in zip(letters, _VNI_ROWS[base]):
            vni_enc[letter] = seq.encode("latin-1")
            vni_enc[letter.upper()] = seq.upper().encode("latin-1")
    vni_enc["đ"], vni_enc["Đ"] = (d.encode("latin-1") for d in _VNI_D)
    vni_dec = {seq: ch for ch, seq in vni_enc.items() if any(b >= 0x80 for b in seq)}
    return tcvn3_enc, tcvn3_dec, vni_enc, vni_dec


_TCVN3_ENCODE, _TCVN3_DECODE, _VNI_ENCODE, _VNI_DECODE = _build_tables()

# Windows-1252 bytes 0x80-0x9F that decode to letters or modifier letters; the quotes, dashes
# and bullets of that range are left out so ordinary punctuation never joins a word.
_CP1252_LETTERS = {ch: bytes([b]) for b in range(0x80, 0xA0)
                   if (ch := bytes([b]).decode("cp1252", errors="ignore"))
                   and unicodedata.category(ch)[0] in "L"}
_CP1252_LETTERS.update({"ˆ": b"\x88", "˜": b"\x98"})


def _to_byte(ch: str) -> bytes | None:
    """The byte a Latin-1 or Windows-1252 decoder turned into `ch`, if any."""
    o = ord(ch)
    if o <= 0xFF:
        return bytes([o])
    return _CP1252_LETTERS.get(ch)


def encode_legacy(text: str, encoding: LegacyEncoding) -> bytes:
    """Encode Vietnamese Unicode text in TCVN3 (ABC) or VNI-Windows, as an old system stored it.

    In TCVN3 a capital letter with a tone gets the lowercase code (the ABC capital fonts drew
    those codes as capitals). Characters with no legacy form raise ValueError.
    """
    table = _TCVN3_ENCODE if encoding == "tcvn3" else _VNI_ENCODE
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        if ord(ch) < 0x80:
            out += ch.encode("ascii")
        elif ch in table:
            out += table[ch]
        else:
            raise ValueError(f"{ch!r} (U+{ord(ch):04X}) has no {encoding} form")
    return bytes(out)


@functools.lru_cache(maxsize=1 << 16)
def decode_legacy(text: str, encoding: LegacyEncoding) -> str | None:
    """Undo the damage: re-encode `text` to the bytes Latin-1/cp1252 decoding came from, then
    decode those bytes as TCVN3 or VNI. None when `text` cannot have come from that encoding."""
    raw = bytearray()
    for ch in text:
        b = _to_byte(ch)
        if b is None:
            return None
        raw += b
    if encoding == "tcvn3":
        out = []
        for b in raw:
            if b < 0x80 and b not in _TCVN3_DECODE:
                out.append(chr(b))
            elif b in _TCVN3_DECODE:
                out.append(_TCVN3_DECODE[b])
            elif b == 0xA0:
                out.append("\u00a0")
            else:
                return None
        return unicodedata.normalize("NFC", "".join(out))
    out = []
    i = 0
    while i < len(raw):
        pair = bytes(raw[i:i + 2])
        if len(pair) == 2 and pair in _VNI_DECODE:
            out.append(_VNI_DECODE[pair])
            i += 2
            continue
        single = bytes(raw[i:i + 1])
        if single in _VNI_DECODE:
            out.append(_VNI_DECODE[single])
        elif raw[i] < 0x80:
            out.append(chr(raw[i]))
        else:
            return None
        i += 1
    return "".join(out)


# --- Vietnamese syllable structure --------------------------------------------------------------

_TONE_MARKS = {"\u0300": "huyền", "\u0301": "sắc", "\u0303": "ngã", "\u0309": "hỏi", "\u0323": "nặng"}
_INITIALS = "ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|b|c|d|đ|g|h|k|l|m|n|p|r|s|t|v|x"
# Vowel groups that end a syllable, and those that take a final consonant.
_OPEN = ("a|e|ê|i|o|ô|ơ|u|ư|y|ai|ao|au|ay|âu|ây|eo|êu|ia|iu|oa|oai|oao|oay|oe|oeo|oi|ôi|ơi|"
         "ua|uây|uê|ui|uôi|uơ|uy|uya|uyu|ưa|ưi|ươi|ươu|ưu|iêu|yêu")
_CLOSED = "a|ă|â|e|ê|i|o|ô|ơ|u|ư|iê|yê|oa|oă|oe|oo|uâ|uê|uô|uy|uyê|ươ"
_FINALS = "ch|nh|ng|c|m|n|p|t"
_SYLLABLE_RE = re.compile(rf"^(?P<i>{_INITIALS})?(?:(?P<o>{_OPEN})|(?P<c>{_CLOSED})(?P<f>{_FINALS}))$")


def _tone_slots(nucleus: str, closed: bool) -> set[int]:
    """Where the tone mark may sit in a vowel group (old and new placement both accepted)."""
    if len(nucleus) == 1:
        return {0}
    if nucleus in ("ưa", "ưi", "ưu"):
        return {0}
    marked = [k for k, c in enumerate(nucleus) if c in "ăâêôơư"]
    if marked:
        return {marked[-1]}  # the vowel with a hat or horn: cầu, người, thuế, chuyện
    if closed:
        return {len(nucleus) - 1}  # hoàn, hoạch, huỳnh
    if nucleus in ("oa", "oe", "uy"):
        return {0, 1}  # hòa and hoà, thủy and thuỷ
    return {0} if len(nucleus) == 2 else {1}  # mái, mèo, của; ngoài, khuỷu


@functools.lru_cache(maxsize=1 << 16)
def is_vietnamese_syllable(word: str) -> bool:
    """True when `word` is shaped like one Vietnamese syllable: initial consonant, vowel group,
    final consonant, at most one tone on a vowel that may carry it, and a sắc or nặng tone
    before a final c/ch/p/t."""
    bases: list[str] = []
    tone_at: int | None = None
    tone: str | None = None
    for i, ch in enumerate(unicodedata.normalize("NFC", word.lower())):
        parts = unicodedata.normalize("NFD", ch)
        marks = [c for c in parts if c in _TONE_MARKS]
        if len(marks) > 1 or (marks and tone is not None):
            return False
        if marks:
            tone_at, tone = i, _TONE_MARKS[marks[0]]
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in _TONE_MARKS))
        if len(base) != 1:
            return False
        bases.append(base)
    m = _SYLLABLE_RE.match("".join(bases))
    if not m:
        return False
    initial, final = m.group("i") or "", m.group("f") or ""
    nucleus = m.group("o") or m.group("c")
    front = nucleus[0] in "ieêy"
    if initial in ("k", "gh", "ngh") and not front:
        return False
    if initial == "c" and front:
        return False
    if tone_at is not None and tone_at - len(initial) not in _tone_slots(nucleus, bool(final)):
        return False
    # A syllable closed by a stop takes sắc or nặng.
    return final not in ("c", "ch", "p", "t") or tone in ("sắc", "nặng")


# --- Detection ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LegacyGuess:
    """What the detector concluded: the encoding, one word as given and as it should read."""

    encoding: LegacyEncoding
    sample: str
    repaired: str
    hits: int
    words: int

    @property
    def encoding_name(self) -> str:
        return {"tcvn3": "TCVN3 (ABC)", "vni": "VNI-Windows"}[self.encoding]


def _token_char(ch: str) -> bool:
    o = ord(ch)
    if o < 0x80:
        return ch.isalpha()
    if 0x80 <= o <= 0xFF:
        return not ch.isspace()
    return ch.isalpha() or ch in _CP1252_LETTERS or unicodedata.category(ch) == "Mn"


class _TokenMap(dict):  # type: ignore[type-arg]
    """For str.translate: a word character to itself, any other to a space; learnt as met."""

    def __missing__(self, code: int) -> int:
        value = code if _token_char(chr(code)) else 0x20
        if len(self) < 65536:  # a text of every code point cannot make it grow without bound
            self[code] = value
        return value


_TOKEN_MAP = _TokenMap()


def _tokens(text: str) -> list[str]:
    """The runs of word characters (`_token_char`), in one C-speed pass: no word character is
    whitespace, so splitting the text with every other character made a space finds them."""
    return text.translate(_TOKEN_MAP).split()


# A single-character token counts only when it is a letter: "«" alone is a French guillemet far
# more often than TCVN3 "ô".
def _counts(token: str) -> bool:
    return len(token) > 1 or unicodedata.category(token)[0] == "L"


# At least this share of the words must read as Vietnamese syllables (as given or once decoded):
# mojibake Vietnamese decodes almost entirely, Western text with an odd word that decodes stays
# well below.
_MIN_VIETNAMESE_SHARE = 0.75
_MAX_SCAN = 20_000
# Letters of ordinary French. A hit made of ASCII and these alone is weak evidence ("dû" is TCVN3
# for "dỷ"); any other character (µ ¸ ¶ ¨ © ª « ¬ ® ä ö for TCVN3, ø å õ Ñ for VNI) is strong.
_WESTERN_LETTERS = set("àâçéèêëîïôùûüÿœÀÂÇÉÈÊËÎÏÔÙÛÜŸŒ")
# Vowel-plus-accent pairs of French/Spanish words that VNI would read as one toned vowel and
# that still make a valid syllable (où = ó, Loïc = Lọc, aún = ẳn): weak evidence. Any other VNI
# pair (oâ, aù, eä, aï) spells nothing common in a Western language and is strong evidence;
# French "goût" or "maïs" do not decode to syllables (gỏt, mạs) and need no exception.
_WESTERN_VNI_PAIRS = ("où", "oï", "aú")
_VNI_PAIR_RE = re.compile("[aeouyôö][ùøûõïâáàåãäêéèúüë]", re.IGNORECASE)


def _hit_strength(token: str, encoding: LegacyEncoding) -> str:
    """How much a word that decodes to Vietnamese says about the encoding: "strong" or "weak"."""
    if encoding == "vni":
        pairs = [p.lower() for p in _VNI_PAIR_RE.findall(token)]
        if any(p not in _WESTERN_VNI_PAIRS for p in pairs):
            return "strong"
        if pairs:
            return "weak"
    else:
        # TCVN3 spells lowercase Vietnamese letters with Latin-1 capitals: "NguyÔn", "QuËn".
        for prev, ch in zip(token, token[1:]):
            if prev.islower() and ch.isupper() and not ch.isascii():
                return "strong"
    if all(ch.isascii() or ch in _WESTERN_LETTERS for ch in token):
        return "weak"
    return "strong"


_VOWELS = set("aeiouyàáâãèéêìíòóôõùúýăđĩũơư")
_CONSONANT_RUN_RE = re.compile(r"[bcdfghjklmnpqrstvwxzđ]{3}")


def _abbreviation(token: str) -> bool:
    """Letters without a vowel (VPCP, HĐND, TTg), or capitals with three consonants in a row (UBND)."""
    low = unicodedata.normalize("NFC", token.lower())
    bases = {unicodedata.normalize("NFD", c)[0] for c in low}
    if not bases & _VOWELS:
        return True
    return token.isupper() and bool(_CONSONANT_RUN_RE.search(low))


# A character a Latin-1/cp1252 decoder makes from a byte >= 0x80: without one, no word can be
# legacy bytes misread.
_LEGACY_CHAR_RE = re.compile("[\x80-\xff" + "".join(_CP1252_LETTERS) + "]")


def detect_legacy_encoding(text: str) -> LegacyGuess | None:
    """Return a guess when `text` reads as TCVN3- or VNI-encoded Vietnamese decoded as Latin-1
    or Windows-1252; None for Unicode Vietnamese, ASCII and ordinary Western European text."""
    if text.isascii() or not _LEGACY_CHAR_RE.search(text, 0, _MAX_SCAN):
        return None
    # Legacy text is damaged uniformly, so the first few thousand words decide for a long one.
    tokens = [t for t in _tokens(text[:_MAX_SCAN]) if _counts(t)]
    # A guess needs at least one hit, a word that reads as Vietnamese only once decoded. Most
    # text has none and needs no syllable analysis (this keeps the writer and reader fast).
    if not any(map(_may_be_hit, tokens)):
        return None
    return _guess(tokens)


def _may_be_hit(token: str) -> bool:
    """Whether `token` is a hit of `_guess` for TCVN3 or VNI: not a syllable as given, one once
    decoded. Remembered for short words (every syllable is short; the table stays bounded)."""
    if token.isascii():
        return False  # decodes to itself, never a hit
    if len(token) <= 16:
        return _may_be_hit_cached(token)
    return _may_be_hit_uncached(token)


def _may_be_hit_uncached(token: str) -> bool:
    # Only a word made entirely of bytes a Latin-1/cp1252 decoder can produce can be legacy
    # text; Unicode Vietnamese words (ế, ư, đ …) cannot.
    if not all(_to_byte(c) is not None for c in token) or is_vietnamese_syllable(token):
        return False
    for encoding in ("tcvn3", "vni"):
        decoded = decode_legacy(token, encoding)  # type: ignore[arg-type]
        if decoded is not None and decoded != token and is_vietnamese_syllable(decoded):
            return True
    return False


_may_be_hit_cached = functools.lru_cache(maxsize=1 << 16)(_may_be_hit_uncached)


def _guess(tokens: list[str]) -> LegacyGuess | None:
    """The syllable analysis of `detect_legacy_encoding` over its counted tokens."""
    best: tuple[tuple[int, int, float], LegacyGuess] | None = None
    for encoding in ("tcvn3", "vni"):
        strong, weak, counted, vietnamese, sample = 0, 0, 0, 0, None
        for token in tokens:
            as_given = is_vietnamese_syllable(token)
            decoded = token if token.isascii() else decode_legacy(token, encoding)
            as_decoded = decoded is not None and is_vietnamese_syllable(decoded)
            if not (as_given or as_decoded) and _abbreviation(token):
                continue  # UBND, TTĐT, TTg say nothing either way
            counted += 1
            vietnamese += as_given or as_decoded
            if not as_decoded or as_given or decoded == token:
                continue
            strength = _hit_strength(token, encoding)
            if strength == "strong":
                strong += 1
            else:
                weak += 1
            if sample is None or (strength == "strong" and sample[2] == "weak"):
                sample = (token, decoded, strength)
        share = vietnamese / counted if counted else 0.0
        # One weak hit is enough only in a text of three words or more that all read as
        # Vietnamese ("Bé Néi vô" is TCVN3 "Bộ Nội vụ"; the words around it decide).
        if share >= _MIN_VIETNAMESE_SHARE and (strong or weak >= 2 or (weak and share == 1.0 and counted >= 3)):
            rank = (strong, strong + weak, share)
            if best is None or rank > best[0]:
                best = (rank, LegacyGuess(encoding, sample[0], sample[1], strong + weak, counted))
    return best[1] if best else None


# --- Other checks and the entry points ----------------------------------------------------------

_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


@dataclass(frozen=True)
class TextIssue:
    """One problem found in a text field; `position` is a character offset into the value."""

    reason: str
    field: str
    message: str
    position: int | None = None


# The per-character checks as regular expressions: one C-speed scan each instead of a Python
# loop (the writer runs them on every text field of every package).
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# C0/C1 controls (tab, LF, CR allowed) and the Unicode non-characters: U+FDD0-FDEF and the
# last two code points of every plane.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufdd0-\ufdef"
                         + "".join(chr((plane << 16) | 0xFFFE) + chr((plane << 16) | 0xFFFF)
                                   for plane in range(17)) + "]")
_BIDI_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")


def inspect_text(value: str, field: str) -> tuple[TextIssue, ...]:
    """Every problem in `value`, without raising: for readers that accept and warn."""
    if value.isascii():
        # No surrogate, legacy byte or bidi control is ASCII: only a control character can be
        # wrong (the writer and the reader call this for every text field).
        if m := _CONTROL_RE.search(value):
            return (TextIssue("edxml.text.control", field,
                              f"{field}: control character U+{ord(m.group()):04X} at offset {m.start()}",
                              m.start()),)
        return ()
    issues: list[TextIssue] = []
    if m := _SURROGATE_RE.search(value):
        issues.append(TextIssue("edxml.text.encoding", field,
                                f"{field}: lone surrogate U+{ord(m.group()):04X} at offset {m.start()} "
                                "(text was not decoded correctly)", m.start()))
    guess = detect_legacy_encoding(value)
    if guess is not None:
        issues.append(TextIssue(
            "edxml.text.legacy_encoding", field,
            f"{field}: looks like Vietnamese in the {guess.encoding_name} legacy encoding read as "
            f"Latin-1/Windows-1252 ({guess.sample!r} would read {guess.repaired!r}); "
            "convert the text to Unicode (TCVN 6909:2001) at the source"))
    if m := _CONTROL_RE.search(value):
        issues.append(TextIssue("edxml.text.control", field,
                                f"{field}: control character U+{ord(m.group()):04X} at offset {m.start()}",
                                m.start()))
    if m := _BIDI_RE.search(value):
        issues.append(TextIssue("edxml.text.bidi", field,
                                f"{field}: bidirectional control U+{ord(m.group()):04X} at offset {m.start()} "
                                "(can make the text display differently from what it says)", m.start()))
    return tuple(issues)


def normalize_text(value: str, field: str, *, strict: bool = True) -> str:
    """Return `value` in NFC, or raise EdxmlError naming `field`.

    Always refused: lone surrogates, legacy-encoded Vietnamese, control characters. Bidi
    controls are refused when `strict` (what we emit); a lenient reader gets them from
    inspect_text as a warning instead.
    """
    if not isinstance(value, str):
        raise EdxmlError("edxml.text.encoding", f"{field}: expected text, got {type(value).__name__}",
                         where=field)
    for issue in inspect_text(value, field):
        if issue.reason == "edxml.text.bidi" and not strict:
            continue
        raise EdxmlError(issue.reason, issue.message, where=field)
    if value.isascii():
        return value  # ASCII is its own NFC
    return unicodedata.normalize("NFC", value)
