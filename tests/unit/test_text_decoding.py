"""Text decoding of ingested files: many languages and encodings in, binary files out.

``decode_text`` takes valid UTF-8 as UTF-8, trusts a UTF-16/32 BOM and leaves the rest to
charset-normalizer, preferring Windows-1252 when it reads as text. These cases cover the
encodings people's old files come in, text that charset-normalizer alone gets wrong, and
binary files of several kinds.
"""

from __future__ import annotations

import random
import zlib

import pytest

from tools.documents.loaders import SkippedFile, decode_text, load_bytes

# Two sentences in each language: long enough for an encoding to be told from another.
WESTERN = {
    "french": "Mettez la crème fraîche à côté du gâteau. Où est le château ? Voilà, c'est "
    "très économique.",
    "spanish": "El niño comió piñata el año pasado. ¿Dónde está la estación? ¡Qué señal "
    "tan pequeña!",
    "portuguese": "A canção do coração: não há pão nem limão. Vovó está à espera da informação.",
    "italian": "Però la città è più bella così: perché no? Caffè e tiramisù per tutti.",
    "german": "Größe und Gewicht: Die Brücke über die Nimra wurde 1932 fertiggestellt, für "
    "3 € Maut.",
    "danish": "Æblegrød og rødgrød med fløde. Søen ligger på øen, og båden er blå.",
    "dutch": "Het café ligt naast de kerk; één keer per week is er markt. Ça va, zo'n mooie dag.",
    "english, Word punctuation": "“Smart quotes” and an em dash — plus a bullet • and an "
    "ellipsis… in a Word file.",
}

SENTENCES = {
    "chinese": "我们的产品说明书：请在使用前仔细阅读本手册。"
    "水壶每个月需要除垢一次，使用柠檬酸。保修期为七年。",
    "chinese, traditional": "我們的產品說明書：請在使用前仔細閱讀本手冊。"
    "水壺每個月需要除垢一次，使用檸檬酸。保修期為七年。",
    "japanese": "この説明書をよくお読みください。"
    "電気ケトルは毎月一回、クエン酸で洗浄してください。保証期間は七年です。",
    "korean": "이 설명서를 잘 읽어 주십시오. 주전자는 매달 한 번 구연산으로 세척하십시오. "
    "보증 기간은 7년입니다.",
    "russian": "Руководство пользователя: чайник нужно очищать от накипи раз в месяц "
    "лимонной кислотой.",
    "ukrainian": "Інструкція користувача: чайник треба очищувати від накипу щомісяця "
    "лимонною кислотою.",
    "greek": "Η γρήγορη καφέ αλεπού πηδά πάνω από το τεμπέλικο σκυλί. Καλημέρα κόσμε.",
    "arabic": "مرحبا بالعالم. يجب تنظيف الغلاية من الترسبات مرة في الشهر بحمض الستريك.",
    "polish": "Zażółć gęślą jaźń. Pociąg przyjechał na dworzec w Łodzi o północy; było "
    "bardzo zimno.",
    "czech": "Příliš žluťoučký kůň úpěl ďábelské ódy. Řeka teče přes město a most je starý.",
}
OTHER_SCRIPTS = [
    ("chinese", "gb18030"),
    ("chinese, traditional", "big5"),
    ("japanese", "shift_jis"),
    ("japanese", "euc_jp"),
    ("korean", "euc_kr"),
    ("russian", "cp1251"),
    ("russian", "koi8_r"),
    ("ukrainian", "cp1251"),
    ("greek", "cp1253"),
    ("arabic", "cp1256"),
    ("polish", "cp1250"),
    ("czech", "cp1250"),
]


def _encodable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


WESTERN_CASES = [
    pytest.param(text, encoding, id=f"{language}-{encoding}")
    for encoding in ("cp1252", "latin-1")
    for language, text in WESTERN.items()
    if _encodable(text, encoding)  # latin-1 has no € or curly quotes
]


@pytest.mark.parametrize(("text", "encoding"), WESTERN_CASES)
def test_western_text_in_an_old_windows_encoding(text: str, encoding: str) -> None:
    # charset-normalizer alone reads most of these as cp1250 or cp1258 ("crčme")
    assert decode_text(text.encode(encoding)) == text


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        pytest.param(SENTENCES[language], encoding, id=f"{language}-{encoding}")
        for language, encoding in OTHER_SCRIPTS
    ],
)
def test_other_scripts_in_their_legacy_encodings(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding)) == text
    # a longer file of the same text, as a real document would be
    assert decode_text(f"{text}\n\n".encode(encoding) * 40) == f"{text}\n\n" * 40


@pytest.mark.parametrize(
    "text",
    [
        *WESTERN.values(),
        *SENTENCES.values(),
        "├── src\n│   └── main.py\n└── README.md",  # box drawing: cp932 to the library alone
        # plain ASCII that charset-normalizer alone calls binary (too many symbols)
        r"EMAIL = r'^(?:[a-z0-9!#$%&*+/=?^_`{|}~-]+"
        r"(?:\.[a-z0-9!#$%&*+/=?^_`{|}~-]+)*)@example\.org$'",
        "∑ x² ≤ ∞ — ½ × π ≈ 1.57",
        "Emoji 🎉🚀 and ✓ marks",
        "naïve",  # short
    ],
)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_unicode_text_in_utf_encodings(text: str, encoding: str) -> None:
    # utf-8-sig, utf-16 and utf-32 write a BOM; plain utf-8 does not
    assert decode_text(text.encode(encoding)) == text


def test_utf16_without_a_bom_is_binary_as_before() -> None:
    # NUL bytes without a BOM are binary (as git decides), even if it is UTF-16 text
    with pytest.raises(SkippedFile, match=r"binary file \(NUL bytes\)"):
        decode_text("The Halvard Bridge crosses the Nimra river.".encode("utf-16-le"))


def test_utf8_with_a_stray_windows_byte_is_read_as_windows_1252() -> None:
    # mixed files (UTF-8 pasted into a cp1252 file) keep their text, as before
    data = ("The bridge was finished in 1932. " * 20).encode() + b"It\x92s old. Caf\xc3\xa9."
    text = decode_text(data)
    assert text.startswith("The bridge was finished in 1932.")
    assert "It’s old." in text  # ’ (0x92) in Windows-1252


def test_a_byte_windows_1252_lacks_does_not_change_the_rest() -> None:
    # 0x81 is undefined in Windows-1252: Latin-1 reads it (alone, the library said cp1257)
    data = ("The café is open daily from nine. " * 5).encode("cp1252") + b"Odd \x81 byte."
    assert decode_text(data) == "The café is open daily from nine. " * 5 + "Odd \x81 byte."


def _random(seed: int, length: int, *, nul: bool, control: bool = True) -> bytes:
    generator = random.Random(seed)
    lowest = 0 if nul else 1 if control else 0x20
    return bytes(generator.randrange(lowest, 256) for _ in range(length))


def _png() -> bytes:
    pixels = zlib.compress(_random(1, 300, nul=True))
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06" + pixels


BINARY = {
    "png": _png(),
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01" + _random(2, 400, nul=True),
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + zlib.compress(b"hello " * 200),
    "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + zlib.compress(b"text " * 300),
    "elf": b"\x7fELF\x02\x01\x01\x00"
    + b"\x00" * 8
    + b"\x03\x00\x3e\x00"
    + _random(3, 500, nul=True),
    "only NULs": b"\x00" * 1000,
    "NULs after a UTF-8 BOM": b"\xef\xbb\xbf" + b"\x00" * 100,
    "NULs between letters": b"\x00\x01\x02\x03binary" * 64,
    "control characters": bytes(range(1, 32)) * 40,
    "high bytes": bytes(range(128, 256)) * 4,
    "short, not UTF-8": b"\xff\xd8\xff",
    # a declared charset is no proof (charset-normalizer's fallback would take it)
    "declared charset, random body": b'<meta charset="koi8-r">'
    + _random(4, 2000, nul=False, control=False),
}


@pytest.mark.parametrize("data", BINARY.values(), ids=BINARY.keys())
def test_binary_files_are_skipped(data: bytes) -> None:
    with pytest.raises(SkippedFile, match=r"^binary file \("):
        decode_text(data)


@pytest.mark.parametrize("length", [64, 300, 4096])
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize(
    ("nul", "control"),
    [(True, True), (False, True), (False, False)],
    ids=["any bytes", "no NULs", "no NULs or control bytes"],
)
def test_random_bytes_are_skipped(seed: int, length: int, nul: bool, control: bool) -> None:
    data = _random(seed, length, nul=nul, control=control)
    with pytest.raises(SkippedFile, match=r"^binary file \("):
        decode_text(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00" * 1000, "binary file (NUL bytes)"),
        (_png(), "binary file (NUL bytes)"),
        (bytes(range(1, 32)) * 40, "binary file (control characters)"),
        (_random(4, 2000, nul=False), "binary file (no text encoding fits)"),
        ("   \n".encode("utf-16"), "empty file"),
    ],
)
def test_the_reason_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(SkippedFile) as caught:
        decode_text(data)
    assert caught.value.reason == reason


@pytest.mark.parametrize(("kind", "section"), [("text", None), ("markdown", "Anleitung")])
def test_a_legacy_encoded_file_loads_with_its_text(kind: str, section: str | None) -> None:
    text = "# Anleitung\n\nDie Brücke über die Nimra wurde 1932 fertiggestellt; Maut 3 €."
    (document,) = load_bytes(text.encode("cp1252"), kind)
    assert "Brücke über die Nimra" in document.page_content and "3 €" in document.page_content
    assert document.metadata.get("section") == section
