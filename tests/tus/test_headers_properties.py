"""Property tests of the tus header parsers (tus/headers.py).

* Upload-Metadata: any valid header round-trips (pairs decoded exactly, the raw text kept byte for byte
  for the HEAD echo); format_metadata output parses back to the same values.
* Any text at all makes every parser return a value or raise a catalogued 4xx TusError: never another
  exception (which would become a 500 without Tus-Resumable).
* Numbers, checksums and Upload-Concat parse exactly what a client may send and refuse the rest.
"""

from __future__ import annotations

import base64
import inspect
import string
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from relaypacs_tus.tus import errors, headers, spec

KEY_CHARS = "".join(c for c in map(chr, range(0x21, 0x7F)) if c != ",")
keys = st.text(alphabet=KEY_CHARS, min_size=1, max_size=20)
values = st.binary(max_size=64)
CATALOGUE = {
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.TusError)
}


def header_of(pairs: dict[str, bytes], bare: set[str]) -> str:
    items = []
    for key, value in pairs.items():
        if not value and key in bare:
            items.append(key)
        else:
            items.append(f"{key} {base64.b64encode(value).decode()}")
    return ",".join(items)


@given(pairs=st.dictionaries(keys, values, max_size=12), bare=st.sets(keys, max_size=4))
def test_metadata_round_trip_and_exact_echo(pairs: dict[str, bytes], bare: set[str]) -> None:
    header = header_of(pairs, bare)
    parsed = headers.parse_metadata(header)
    # HTTP drops leading/trailing whitespace of a field value (RFC 9110 5.5), so that is what was "sent".
    assert parsed.raw == header.strip(" \t"), "HEAD must echo the header exactly as sent"
    assert [k for k, _ in parsed.pairs] == list(pairs), "order is kept"
    for key, value in parsed.pairs:
        assert (value or b"") == pairs[key]
        assert value is None or value == pairs[key]


@given(
    text_values=st.dictionaries(
        st.text(alphabet=string.ascii_letters + "_-", min_size=1), st.text(max_size=30)
    )
)
def test_format_metadata_parses_back(text_values: dict[str, str]) -> None:
    parsed = headers.parse_metadata(headers.format_metadata(text_values))
    assert parsed.as_text() == text_values


@given(pairs=st.dictionaries(keys, values, min_size=1, max_size=5), data=st.data())
def test_duplicate_keys_are_refused(pairs: dict[str, bytes], data: st.DataObject) -> None:
    header = header_of(pairs, set())
    dup = data.draw(st.sampled_from(sorted(pairs)))
    with pytest.raises(errors.InvalidMetadata):
        headers.parse_metadata(f"{header},{dup} {base64.b64encode(b'again').decode()}")


B64_ALPHABET = string.ascii_letters + string.digits + "+/="


@given(key=keys, junk=st.text(min_size=1).filter(lambda t: any(c not in B64_ALPHABET for c in t.strip())))
def test_non_base64_values_are_refused(key: str, junk: str) -> None:
    # Whitespace around a pair is trimmed (tusd: strings.TrimSpace), so "k \t" is the key "k" alone.
    value = junk.replace(" ", "!").replace(",", "!")
    with pytest.raises(errors.InvalidMetadata):
        headers.parse_metadata(f"{key} {value}")


PARSERS: list[tuple[str, Callable[[str], object]]] = [
    ("metadata", headers.parse_metadata),
    ("upload-length", headers.parse_upload_length),
    ("upload-offset", headers.parse_upload_offset),
    ("defer-length", headers.parse_defer_length),
    ("checksum", headers.parse_checksum),
    ("concat", headers.parse_concat),
    ("tus-resumable", headers.parse_tus_resumable),
    ("content-type", headers.is_offset_octet_stream),
]


@pytest.mark.parametrize(("name", "parse"), PARSERS, ids=[p[0] for p in PARSERS])
@given(text=st.text(max_size=300) | st.text(alphabet=" ,;=+/-_.:0123456789abcdefsha", max_size=60))
@example(text="\r\nSet-Cookie: x=1")
@example(text="\x00")
@example(text="a " * 5000)
def test_any_text_returns_or_raises_a_catalogued_error(
    name: str, parse: Callable[[str], object], text: str
) -> None:
    caught: errors.TusError | None = None
    try:
        parse(text)
    except errors.TusError as exc:
        caught = exc
    if caught is not None:
        assert type(caught) in CATALOGUE
        assert 400 <= caught.status < 500, f"{name}: client input is a client error"
        assert "\n" not in caught.message
        assert "\r" not in caught.message


@given(n=st.integers(min_value=0, max_value=spec.MAX_INT64))
def test_numbers_parse_exactly(n: int) -> None:
    assert headers.parse_upload_length(str(n)) == n
    assert headers.parse_upload_offset(f" {n} ") == n


@given(
    n=st.integers(min_value=-(2**70), max_value=-1)
    | st.integers(min_value=spec.MAX_INT64 + 1, max_value=2**90)
)
def test_numbers_out_of_range_are_refused(n: int) -> None:
    with pytest.raises(errors.InvalidUploadLength):
        headers.parse_upload_length(str(n))
    with pytest.raises(errors.InvalidOffset):
        headers.parse_upload_offset(str(n))


@given(n=st.integers(min_value=0, max_value=10**6), prefix=st.sampled_from(["+", "0x", "-", "1e", " 1 "]))
def test_number_spellings_other_than_decimal_digits_are_refused(n: int, prefix: str) -> None:
    with pytest.raises(errors.InvalidUploadLength):
        headers.parse_upload_length(
            f"{prefix}{n}".replace(" 1 ", "1 ") if prefix == " 1 " else f"{prefix}{n}"
        )


SIZES = {"sha1": 20, "sha256": 32, "sha512": 64, "md5": 16, "crc32": 4}


@given(algorithm=st.sampled_from(spec.CHECKSUM_ALGORITHMS), data=st.data())
def test_checksum_round_trip(algorithm: str, data: st.DataObject) -> None:
    digest = data.draw(st.binary(min_size=SIZES[algorithm], max_size=SIZES[algorithm]))
    parsed = headers.parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert parsed.algorithm == algorithm
    assert parsed.digest == digest


@given(algorithm=st.sampled_from(spec.CHECKSUM_ALGORITHMS), size=st.integers(min_value=1, max_value=80))
def test_checksum_digest_size_must_fit_the_algorithm(algorithm: str, size: int) -> None:
    header = f"{algorithm} {base64.b64encode(bytes(size)).decode()}"
    if size == SIZES[algorithm]:
        headers.parse_checksum(header)
    else:
        with pytest.raises(errors.InvalidChecksum):
            headers.parse_checksum(header)


@given(name=st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12))
def test_unknown_checksum_algorithm_is_400(name: str) -> None:
    if name in spec.CHECKSUM_ALGORITHMS:
        return
    with pytest.raises(errors.UnsupportedChecksumAlgorithm) as caught:
        headers.parse_checksum(f"{name} AAAA")
    assert caught.value.status == 400


url_chars = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+;=%"


@given(urls=st.lists(st.text(alphabet=url_chars, min_size=1, max_size=40), min_size=1, max_size=6))
def test_concat_final_keeps_urls_in_order(urls: list[str]) -> None:
    parsed = headers.parse_concat("final;" + " ".join(urls))
    assert parsed.is_final
    assert parsed.urls == tuple(urls)
    assert headers.parse_concat("partial").is_partial
