"""``batchmig.plugin.hmac_sha256``, the signers' HMAC: the same bytes as the standard library's."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from batchmig.plugin import hmac_sha256


@given(key=st.binary(max_size=200), messages=st.lists(st.binary(max_size=5000), min_size=1, max_size=4))
def test_it_signs_every_message_as_hmac_digest_does(key: bytes, messages: list[bytes]) -> None:
    sign = hmac_sha256(key)  # keys longer than SHA-256's 64-byte block are hashed first, as RFC 2104 says
    for message in messages:  # one signer, many messages: each starts from the key's states afresh
        assert sign(message) == hmac.digest(key, message, "sha256")


def test_the_rfc_4231_example() -> None:
    sign = hmac_sha256(b"Jefe")
    assert sign(b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
