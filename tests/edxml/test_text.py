import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edxml.errors import EdxmlError
from edxml.text import (
    REASONS,
    decode_legacy,
    detect_legacy_encoding,
    encode_legacy,
    inspect_text,
    is_vietnamese_syllable,
    normalize_text,
)

# Realistic values of Subject, OrganName, Staff, Place... as agencies write them.
VIETNAMESE = [
    "Ủy ban nhân dân tỉnh Thái Nguyên",
    "Văn phòng Chính phủ",
    "V/v kết nối, liên thông phần mềm quản lý văn bản",
    "Quyết định về việc ban hành Quy chế quản lý, vận hành, khai thác Hệ thống quản lý văn bản và điều hành",
    "Sở Thông tin và Truyền thông tỉnh Thái Nguyên",
    "Báo cáo tình hình kinh tế - xã hội tháng 9 năm 2024",
    "Kế hoạch triển khai chuyển đổi số năm 2025",
    "Công văn về việc góp ý dự thảo Nghị định sửa đổi, bổ sung",
    "Thông báo kết luận của Chủ tịch Ủy ban nhân dân tỉnh tại buổi làm việc",
    "Giấy mời dự hội nghị tổng kết công tác văn thư, lưu trữ năm 2024",
    "Tờ trình đề nghị phê duyệt chủ trương đầu tư dự án",
    "Hướng dẫn thực hiện chế độ báo cáo thống kê ngành nội vụ",
    "Chỉ thị về tăng cường kỷ luật, kỷ cương hành chính",
    "Phòng Văn thư - Lưu trữ, Văn phòng Ủy ban nhân dân tỉnh",
    "Sở Tài chính tỉnh Nghệ An",
    "Ủy ban nhân dân huyện Phú Lương",
    "Ban Cơ yếu Chính phủ",
    "Nguyễn Thị Ngọc Trâm",
    "Trần Văn Hùng, Phó Chủ tịch Thường trực",
    "Đề án phát triển nguồn nhân lực chất lượng cao giai đoạn 2021-2030",
    "Về việc xử lý kiến nghị của cử tri trước kỳ họp thứ tám",
    "Tăng cường công tác phòng, chống thiên tai và tìm kiếm cứu nạn",
    "Kết quả thực hiện nhiệm vụ cải cách hành chính quý III năm 2024",
    "Đề nghị cung cấp thông tin phục vụ công tác thanh tra",
    "Trung tâm Phục vụ hành chính công tỉnh",
    "Hội đồng nhân dân thành phố Hải Phòng",
    "Sở Giáo dục và Đào tạo",
    "Triển khai thực hiện Nghị định số 30/2020/NĐ-CP về công tác văn thư",
    "Phê duyệt danh mục thủ tục hành chính được tiếp nhận tại bộ phận một cửa",
    "Hỏa tốc: đề nghị báo cáo trước 16 giờ ngày 15 tháng 10",
    "Cục Thuế tỉnh Thái Nguyên",
    "Số 1 Hoàng Hoa Thám, Quận Ba Đình, Hà Nội",
    "Kính gửi: Các sở, ban, ngành; Ủy ban nhân dân các huyện, thành phố",
    "UBND TỈNH THÁI NGUYÊN",
    "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
    "Độc lập - Tự do - Hạnh phúc",
    "Văn thư - Phòng Văn thư - Lưu trữ: Đã đến - Phần mềm QLVB đã nhận nhưng văn thư chưa xử lý",
    "Bộ Nội vụ",
    "Hà Nội",
    "Đà Nẵng",
]

WESTERN = [
    "The quick brown fox jumps over the lazy dog.",
    "Please find attached the signed decision and its annexes.",
    "Le château de la reine est à côté de l'église.",
    "« Bonjour », dit-il à la fenêtre.",
    "Noël à Orléans : crème brûlée, pâté et bière.",
    "Ça coûte déjà trop cher, répondit-elle naïvement.",
    "Être ou ne pas être, telle est la question.",
    "Ministère de l'Économie et des Finances, Paris",
    "Les élèves préfèrent l'été à l'hiver.",
    "Où est le goût du café de Loïc ?",
    "OÙ EST LA GARE ? À GAUCHE, PRÈS DU CAFÉ.",
    "L'hôpital où il travaille a fermé ses portes à Noël.",
    "Il a payé son coût total après août.",
    "L'œuvre de Molière, où l'on voit Tartuffe",
    "Agence Française de Développement",
    "Déjà vu: a naïve café owner in Zürich.",
    "Señor Muñoz visitó São Paulo y Málaga; aún más rápido que Raúl.",
    "Die Größe der Straße ist für Fußgänger gefährlich.",
    "Åse og Søren bor i Ærøskøbing.",
    "Temperature 25°C ± 2, § 3 ¶ 4, © 2024 ®",
    "Prix : 12,50 € — TVA ½ comprise",
    "où", "goût", "Loïc", "Noël", "dû", "À bientôt", "résumé", "José Martí", "on a dû partir",
    "le maïs et le goût", "coïncidence", "Citroën", "Israël",
    # ASCII fields of the reference samples
    "Nguyen Thanh Phuc", "TL. BO TRUONG", "Cuc truong cuc ung dung cong nghe thong tin",
    "vanthuvanphong@gov.vn", "www.haiphong.gov.vn", "(84-4) 3821 5137", "1896_QD-TTg_m_294779.doc",
    "Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP",
]


def mojibake(text: str, encoding: str, codec: str) -> str:
    return encode_legacy(text, encoding).decode(codec)


# --- The code tables ----------------------------------------------------------------------------

@pytest.mark.parametrize("legacy, unicode_text", [
    ("Th¸i Nguyªn", "Thái Nguyên"),
    ("UBND tØnh", "UBND tỉnh"),
    ("B¶o Th¾ng", "Bảo Thắng"),
    ("M\u00adêng Kh\u00ad¬ng", "Mường Khương"),  # ư is 0xAD, the soft hyphen in Latin-1
    ("B¸t X¸t", "Bát Xát"),
    ("§µ N½ng", "Đà Nẵng"),
    ("quyÕt ®Þnh", "quyết định"),
])
def test_tcvn3_table_matches_published_conversions(legacy, unicode_text):
    assert decode_legacy(legacy, "tcvn3") == unicode_text
    assert encode_legacy(unicode_text, "tcvn3").decode("latin-1") == legacy


@pytest.mark.parametrize("legacy, unicode_text", [
    ("Xin chaøo caùc baïn", "Xin chào các bạn"),
    ("Thaùi Nguyeân", "Thái Nguyên"),
    ("Coâng vaên", "Công văn"),
    ("Ñaø Naüng", "Đà Nẵng"),
    ("UÛY BAN NHAÂN DAÂN", "ỦY BAN NHÂN DÂN"),
    ("Nguyeãn Thò Ngoïc Traâm", "Nguyễn Thị Ngọc Trâm"),
    ("ñöôïc", "được"),
])
def test_vni_table_matches_published_conversions(legacy, unicode_text):
    assert decode_legacy(legacy, "vni") == unicode_text
    assert encode_legacy(unicode_text, "vni").decode("latin-1") == legacy


_LETTERS = "aáàảãạăắằẳẵặâấầẩẫậeéèẻẽẹêếềểễệiíìỉĩịoóòỏõọôốồổỗộơớờởỡợuúùủũụưứừửữựyýỳỷỹỵđ"
_VIETNAMESE_LETTERS = _LETTERS + _LETTERS.upper()


@given(st.text(st.sampled_from(_VIETNAMESE_LETTERS + "bcdghklmnpqrstvx ,.-"), max_size=40))
def test_every_vietnamese_letter_survives_a_trip_through_vni(text):
    assert decode_legacy(mojibake(text, "vni", "latin-1"), "vni") == text


@given(st.text(st.sampled_from(_VIETNAMESE_LETTERS + "bcdghklmnpqrstvx ,.-"), max_size=40))
def test_every_vietnamese_letter_survives_a_trip_through_tcvn3_except_toned_capitals(text):
    # TCVN3 (VN3) has no toned capitals: the ABC capital fonts drew the lowercase codes.
    back = decode_legacy(mojibake(text, "tcvn3", "cp1252"), "tcvn3")
    assert back.lower() == text.lower()


def test_tcvn3_capitals_without_tone_keep_their_own_codes():
    assert encode_legacy("ĂÂÊÔƠƯĐ", "tcvn3") == bytes(range(0xA1, 0xA8))


def test_text_without_legacy_form_cannot_be_encoded():
    with pytest.raises(ValueError):
        encode_legacy("中文", "vni")


# --- Syllables ----------------------------------------------------------------------------------

@pytest.mark.parametrize("word", [
    "nghiêng", "người", "khuỷu", "quyết", "giữa", "gì", "hòa", "hoà", "thủy", "thuỷ", "huỳnh", "ở", "ý",
    "THÁI", "Nguyễn", "oách", "chuyện", "khuya", "xoong", "quốc", "rượu", "được", "Đà",
])
def test_real_syllables_are_recognised(word):
    assert is_vietnamese_syllable(word)


@pytest.mark.parametrize("word", [
    "Néi", "tØnh", "Coâng", "ka", "ca" + "\u0301" * 2, "cì", "ngha", "thàc", "hóa" + "n" + "g" + "x",
    "heọ", "cafe", "est", "str", "mặn" + "g" + "h", "gỏt", "qú", "",
])
def test_non_syllables_are_refused(word):
    assert not is_vietnamese_syllable(word)


# --- Detection ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sentence", VIETNAMESE)
@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
@pytest.mark.parametrize("codec", ["latin-1", "cp1252"])
def test_legacy_encoded_vietnamese_is_refused_naming_the_field(sentence, encoding, codec):
    damaged = mojibake(sentence, encoding, codec)
    with pytest.raises(EdxmlError) as excinfo:
        normalize_text(damaged, "Subject")
    assert excinfo.value.reason == "edxml.text.legacy_encoding"
    assert "Subject" in excinfo.value.message
    assert excinfo.value.where == "Subject"


@pytest.mark.parametrize("sentence", [s for s in VIETNAMESE if len(s.split()) >= 4])
@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
def test_detector_names_the_encoding_and_repairs_a_word(sentence, encoding):
    guess = detect_legacy_encoding(mojibake(sentence, encoding, "cp1252"))
    assert guess.encoding == encoding
    assert guess.repaired.lower() in sentence.lower()
    assert guess.sample not in sentence


@pytest.mark.parametrize("sentence", VIETNAMESE)
def test_unicode_vietnamese_passes_unchanged(sentence):
    assert detect_legacy_encoding(sentence) is None
    assert normalize_text(sentence, "Subject") == sentence


@pytest.mark.parametrize("sentence", WESTERN)
def test_western_and_ascii_text_passes(sentence):
    assert detect_legacy_encoding(sentence) is None
    assert normalize_text(sentence, "Subject") == unicodedata.normalize("NFC", sentence)


def test_legacy_words_inside_unicode_text_are_found():
    text = "Kính gửi: UBND tØnh Th¸i Nguyªn"
    with pytest.raises(EdxmlError) as excinfo:
        normalize_text(text, "OrganName")
    assert excinfo.value.reason == "edxml.text.legacy_encoding"


# Syllables built from the spelling rules, independently of the detector.
_INITIALS = ["", "b", "c", "ch", "d", "đ", "g", "gh", "gi", "h", "k", "kh", "l", "m", "n", "ng", "ngh",
             "nh", "p", "ph", "qu", "r", "s", "t", "th", "tr", "v", "x"]
_OPEN = ["a", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y", "ai", "ao", "au", "ay", "âu", "ây", "eo", "êu",
         "ia", "iu", "oa", "oai", "oay", "oe", "oi", "ôi", "ơi", "ua", "uây", "uê", "ui", "uôi", "uy",
         "ưa", "ưi", "ươi", "ươu", "ưu", "iêu", "yêu"]
_CLOSED = ["a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "iê", "yê", "oa", "oă", "oe", "uâ",
           "uê", "uô", "uy", "uyê", "ươ"]
_FINALS = ["c", "ch", "m", "n", "ng", "nh", "p", "t"]
_TONES = ["", "\u0301", "\u0300", "\u0309", "\u0303", "\u0323"]


def _tone_position(nucleus: str, closed: bool) -> int:
    if len(nucleus) == 1 or nucleus in ("ưa", "ưi", "ưu"):
        return 0
    hats = [i for i, c in enumerate(nucleus) if c in "ăâêôơư"]
    if hats:
        return hats[-1]
    if closed:
        return len(nucleus) - 1
    return 0 if len(nucleus) == 2 else 1


def _syllable(pick) -> str:
    """One syllable; `pick` chooses an item from a list (hypothesis' draw or random.choice)."""
    closed = pick([False, True])
    nucleus = pick(_CLOSED if closed else _OPEN)
    final = pick(_FINALS) if closed else ""
    front = nucleus[0] in "ieêy"
    initials = [i for i in _INITIALS
                if not (i in ("k", "gh", "ngh") and not front) and not (i in ("c", "g", "ng") and front)
                and not (i == "gi" and nucleus[0] == "i") and not (i == "qu" and nucleus[0] in "uoư")]
    initial = pick(initials)
    # A syllable closed by c/ch/p/t takes sắc or nặng.
    tone = pick(["\u0301", "\u0323"] if final in ("c", "ch", "p", "t") else _TONES)
    at = _tone_position(nucleus, bool(final))
    word = initial + nucleus[:at + 1] + tone + nucleus[at + 1:] + final
    return unicodedata.normalize("NFC", word)


@st.composite
def syllables(draw):
    return _syllable(lambda items: draw(st.sampled_from(items)))


@st.composite
def vietnamese_texts(draw):
    words = draw(st.lists(syllables(), min_size=1, max_size=14))
    style = draw(st.sampled_from(["lower", "title", "upper", "sentence"]))
    if style == "title":
        words = [w[:1].upper() + w[1:] for w in words]
    elif style == "upper":
        words = [w.upper() for w in words]
    elif style == "sentence":
        words[0] = words[0][:1].upper() + words[0][1:]
    seps = draw(st.lists(st.sampled_from([" ", " ", " ", ", ", " - ", "; ", "/", " 2024 "]),
                         min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps)).strip()


@given(syllables())
def test_generated_syllables_are_recognised(word):
    assert is_vietnamese_syllable(word)


@settings(max_examples=400)
@given(vietnamese_texts())
def test_any_unicode_vietnamese_text_passes_unchanged(text):
    assert normalize_text(text, "Subject") == text


@given(vietnamese_texts())
def test_nfd_input_comes_back_nfc(text):
    decomposed = unicodedata.normalize("NFD", text)
    assert normalize_text(decomposed, "Subject") == text


@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
def test_nearly_all_generated_texts_of_five_words_or_more_are_caught_once_legacy_encoded(encoding):
    # A statistical bound rather than a property: a short text can be damaged only in words that
    # read as Vietnamese either way ("bộ" is TCVN3 "bé"), and those prove nothing.
    rng = random.Random(20240501)
    damaged_texts = caught = 0
    for _ in range(2000):
        text = " ".join(_syllable(rng.choice) for _ in range(rng.randint(5, 12)))
        damaged = mojibake(text, encoding, "cp1252")
        if damaged == text:
            continue
        damaged_texts += 1
        caught += detect_legacy_encoding(damaged) is not None
    assert damaged_texts > 1900
    assert caught / damaged_texts >= 0.99


@given(st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=60))
def test_any_printable_ascii_passes(text):
    assert normalize_text(text, "Subject") == text


# --- Control, bidi, surrogates ------------------------------------------------------------------

@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f", "\ufffe", "\uffff"])
def test_control_characters_are_refused(char):
    with pytest.raises(EdxmlError) as excinfo:
        normalize_text(f"Báo cáo{char}tháng 9", "Content")
    assert excinfo.value.reason == "edxml.text.control"
    assert f"U+{ord(char):04X}" in excinfo.value.message
    assert "offset 7" in excinfo.value.message


def test_tab_newline_and_carriage_return_are_allowed():
    assert normalize_text("Dòng 1\r\n\tDòng 2\n", "Content") == "Dòng 1\r\n\tDòng 2\n"


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"])
def test_bidi_controls_are_refused_on_output_and_reported_on_input(char):
    value = f"Quyết định {char}số 15"
    with pytest.raises(EdxmlError) as excinfo:
        normalize_text(value, "Subject")
    assert excinfo.value.reason == "edxml.text.bidi"
    assert normalize_text(value, "Subject", strict=False) == value
    assert [i.reason for i in inspect_text(value, "Subject")] == ["edxml.text.bidi"]


def test_ordinary_directional_marks_are_not_bidi_overrides():
    assert normalize_text("a\u200eb\u200fc", "Subject") == "a\u200eb\u200fc"


def test_lone_surrogate_is_refused_even_on_input():
    for strict in (True, False):
        with pytest.raises(EdxmlError) as excinfo:
            normalize_text("Hà Nội \udcc3", "Place", strict=strict)
        assert excinfo.value.reason == "edxml.text.encoding"


def test_legacy_encoding_is_refused_even_on_input():
    with pytest.raises(EdxmlError) as excinfo:
        normalize_text("Coâng vaên", "Subject", strict=False)
    assert excinfo.value.reason == "edxml.text.legacy_encoding"


def test_inspect_reports_every_problem_without_raising():
    report = inspect_text("UBND tØnh Th¸i Nguyªn\x01\u202e", "OrganName")
    assert [i.reason for i in report] == ["edxml.text.legacy_encoding", "edxml.text.control", "edxml.text.bidi"]
    assert all(i.field == "OrganName" for i in report)


def test_non_text_is_refused():
    with pytest.raises(EdxmlError):
        normalize_text(b"bytes", "Subject")


def test_every_reason_raised_here_is_documented():
    assert set(REASONS) == {"edxml.text.legacy_encoding", "edxml.text.control", "edxml.text.bidi",
                            "edxml.text.encoding"}


# --- The fast paths decide as the full analysis does -------------------------------------------

def _full_analysis(text: str):
    """What detect_legacy_encoding concluded before its per-word shortcut: the syllable analysis
    of every counted word (text_module._guess), after the same cheap filters."""
    import edxml.text as text_module

    if text.isascii() or not text_module._LEGACY_CHAR_RE.search(text, 0, text_module._MAX_SCAN):
        return None
    tokens = [t for t in text_module._tokens(text[:text_module._MAX_SCAN]) if text_module._counts(t)]
    if not tokens or all(t.isascii() for t in tokens):
        return None
    return text_module._guess(tokens)


_LATIN = "".join(chr(c) for c in range(0xA0, 0x100)) + "ŒœŠšŸŽžƒˆ˜"
_MIXED = st.text(st.sampled_from(_VIETNAMESE_LETTERS + _LATIN + "bcdghklmnpqrstvxABCNTU ,.-"), max_size=60)


@pytest.mark.parametrize("text", VIETNAMESE + WESTERN
                         + [mojibake(t, e, c) for t in VIETNAMESE for e, c in
                            (("tcvn3", "cp1252"), ("tcvn3", "latin-1"), ("vni", "cp1252"))])
def test_the_per_word_shortcut_concludes_as_the_full_analysis(text):
    assert detect_legacy_encoding(text) == _full_analysis(text)


@settings(max_examples=600)
@given(st.one_of(_MIXED, vietnamese_texts(),
                 vietnamese_texts().map(lambda t: mojibake(t, "tcvn3", "cp1252")),
                 vietnamese_texts().map(lambda t: mojibake(t, "vni", "cp1252"))))
def test_the_per_word_shortcut_concludes_as_the_full_analysis_on_generated_text(text):
    assert detect_legacy_encoding(text) == _full_analysis(text)


@given(st.text(st.characters(codec="ascii"), max_size=40), st.sampled_from(["Subject", "OrganName"]))
def test_ascii_is_inspected_as_any_text(text, field):
    # The ASCII shortcut of inspect_text finds what the general checks find (only controls can
    # be wrong in ASCII), with the same messages.
    import edxml.text as text_module

    expected = []
    if m := text_module._CONTROL_RE.search(text):
        expected.append(("edxml.text.control", m.start()))
    assert text_module._SURROGATE_RE.search(text) is None and text_module._BIDI_RE.search(text) is None
    assert [(i.reason, i.position) for i in inspect_text(text, field)] == expected
    # " ế" makes the text non-ASCII without any other issue (ế has no legacy byte)
    assert inspect_text(text, field) == inspect_text(text + " ế", field)
