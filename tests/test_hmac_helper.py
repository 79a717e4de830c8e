"""The signers' helpers in ``batchmig.plugin``: ``hmac_sha256`` and ``percent_encode`` write
the same bytes as the standard library's ``hmac.digest`` and ``urllib.parse.quote``."""

from __future__ import annotations

import hmac
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchmig.plugin import hmac_sha256, percent_encode


# Up to 20 KB of random bytes per example: on a loaded machine (load 20 and more, other
# suites side by side) generating them can exceed the health check's budget, which measures
# the machine, not the signer. The examples, their number and their sizes stay the same;
# no deadline for the same reason (one example's wall time under load says nothing either).
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(key=st.binary(max_size=200), messages=st.lists(st.binary(max_size=5000), min_size=1, max_size=4))
def test_it_signs_every_message_as_hmac_digest_does(key: bytes, messages: list[bytes]) -> None:
    sign = hmac_sha256(key)  # keys longer than SHA-256's 64-byte block are hashed first, as RFC 2104 says
    for message in messages:  # one signer, many messages: each starts from the key's states afresh
        assert sign(message) == hmac.digest(key, message, "sha256")


def test_the_rfc_4231_example() -> None:
    sign = hmac_sha256(b"Jefe")
    assert sign(b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


@given(text=st.text() | st.text(st.characters(max_codepoint=127)))
def test_percent_encode_writes_what_quote_writes(text: str) -> None:
    assert percent_encode(text) == quote(text, safe="~")


def test_percent_encode_examples() -> None:
    assert percent_encode("oss-cn-hangzhou.aliyuncs.com:bucket:db3/full.bak") == (
        "oss-cn-hangzhou.aliyuncs.com%3Abucket%3Adb3%2Ffull.bak")
    assert percent_encode("a b+c~d_e") == "a%20b%2Bc~d_e"
    assert percent_encode("数据库") == "%E6%95%B0%E6%8D%AE%E5%BA%93"
