"""The redactor masks every registered secret in every form it takes on the way out.

The encodings are computed here independently of ``batchmig.redaction`` (straight
from the standard library), so a form the redactor forgets to generate fails.
"""

from __future__ import annotations

import base64
import html
import json
import re
import string
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchmig.redaction import MASK, Redactor

HOSTILE = ['pa"ss/w\\rd&é<€>+ =%', "tgt pw 'x'+y/z=é€😀", "Xy7#kP9!qR2$", "line\nbreak\ttab\u2028sep", "aaaa"]


def wire_forms(secret: str) -> dict[str, str]:
    """How clients, clouds and proxies carry a secret, named."""
    data = secret.encode()
    escaped = json.dumps(secret)[1:-1]
    forms = {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote, / safe": quote(secret),
        "quote_plus": quote_plus(secret),
        "json": escaped,
        "json, utf-8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json twice": json.dumps(escaped)[1:-1],
        "json twice, utf-8": json.dumps(json.dumps(secret, ensure_ascii=False), ensure_ascii=False)[1:-1],
        "json thrice": json.dumps(json.dumps(escaped)[1:-1])[1:-1],
        "url-encoded json": quote(escaped, safe=""),
        "base64": base64.b64encode(data).decode(),
        "base64, no padding": base64.b64encode(data).decode().rstrip("="),
        "urlsafe base64": base64.urlsafe_b64encode(data).decode(),
        "urlsafe base64, no padding": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "base64 of json": base64.b64encode(escaped.encode()).decode(),
        "HTML": html.escape(secret),
        "XML text": html.escape(secret, quote=False),
        "CSV field": secret.replace('"', '""'),
        "hex": data.hex(),
        "HEX": data.hex().upper(),
    }
    return {name: form for name, form in forms.items() if len(form) >= 4}


def embedded_in_base64(secret: str) -> dict[str, str]:
    """The secret inside a longer body, base64-encoded whole: at all three byte alignments, both alphabets."""
    body = b'{"Password": "' + secret.encode() + b'", "rest": 1}'
    forms = {}
    for prefix in (b"", b"a", b"ab"):
        forms[f"base64, {len(prefix)} more bytes before"] = base64.b64encode(prefix + body).decode()
        forms[f"urlsafe base64, {len(prefix)} more bytes before"] = base64.urlsafe_b64encode(prefix + body).decode()
    return forms


def recoverable(text: str, secret: str) -> bool:
    """Whether decoding any base64-looking run of ``text``, at any character offset, gives ``secret`` back."""
    for run in re.findall(r"[A-Za-z0-9+/_-]{4,}", text):
        for shift in range(4):
            chunk = run[shift:][: (len(run) - shift) // 4 * 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    if secret.encode() in decode(chunk):
                        return True
                except ValueError:
                    continue
    return False


@pytest.mark.parametrize("secret", HOSTILE)
def test_a_secret_inside_a_base64_body_is_masked_at_every_alignment(secret: str) -> None:
    redactor = Redactor()
    redactor.add(secret)
    for name, blob in embedded_in_base64(secret).items():
        assert recoverable(blob, secret), name  # the check below can see a secret
        masked = redactor(f"echo: {blob}")
        assert MASK in masked and not recoverable(masked, secret), f"{name}: {masked}"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(secret=st.text(min_size=4, max_size=40).filter(lambda s: s.strip() == s and len(set(s)) > 2),
       before=st.text(max_size=30), after=st.text(max_size=30))
def test_any_secret_is_masked_in_any_form_in_any_text(secret: str, before: str, after: str) -> None:
    redactor = Redactor()
    redactor.add(secret)
    for name, form in wire_forms(secret).items():
        masked = redactor(before + form + after)
        assert form not in masked, f"{name} of {secret!r} survived in {masked!r}"
    untouched = before + " - " + after
    if not any(form in untouched for form in redactor.forms(secret)):
        assert redactor(untouched) == untouched


def test_overlapping_secrets_leave_no_piece_visible() -> None:
    redactor = Redactor()
    for secret in ("abcd-1234", "1234-wxyz-9876"):
        redactor.add(secret)
    assert redactor("x abcd-1234-wxyz-9876 y") == f"x {MASK} y"
    assert redactor("1234-wxyz-9876abcd-1234") == MASK


def test_secrets_learnt_one_by_one_are_all_masked_with_few_expressions() -> None:
    redactor = Redactor()
    secrets = [f"password-{n:03d}-{string.ascii_letters[n % 52]}" for n in range(100)]
    for secret in secrets:
        redactor.add(secret)
        assert redactor(f"<{secret}>") == f"<{MASK}>"
    for secret in secrets:
        text = f"<{secret}> <{quote_plus(secret)}> <{json.dumps(secret)[1:-1]}>"
        assert redactor(text) == f"<{MASK}> <{MASK}> <{MASK}>"
    assert len(redactor._tiers) <= 7  # a binary counter of 100 secrets: at most log2(100) + 1 tiers


def test_short_values_are_not_secrets() -> None:
    redactor = Redactor()
    redactor.add("abc")
    assert redactor("abc abc") == "abc abc"


def test_a_provider_encoding_is_masked_with_its_own_wire_forms() -> None:
    redactor = Redactor()
    redactor.add("vendor-password-1")
    redactor.add_encoding("base32", lambda s: base64.b32encode(s.encode()).decode())
    encoded = base64.b32encode(b"vendor-password-1").decode()
    assert redactor(f"sent {encoded}") == f"sent {MASK}"
    assert redactor(f"sent {quote(encoded, safe='')}") == f"sent {MASK}"
    redactor.add("later-password-2")  # encodings apply to secrets registered afterwards too
    assert redactor(base64.b32encode(b"later-password-2").decode()) == MASK
    with pytest.raises(ZeroDivisionError):
        redactor.add_encoding("broken", lambda s: str(1 / 0))


def test_structures_stay_valid_json() -> None:
    redactor = Redactor()
    redactor.add("null")  # a secret that is also JSON syntax
    value = {"a": None, "b": "null", "c": ["x null y", 3, True], "null": 1.5, "d": object()}
    masked = redactor.redact_tree(value)
    assert json.loads(json.dumps(masked))["b"] == MASK
    assert masked["a"] is None and masked["c"] == [f"x {MASK} y", 3, True] and masked[MASK] == 1.5
    assert isinstance(masked["d"], str)


def _each_string_masked(redactor: Redactor, value: object) -> object:
    """What ``redact_tree`` must return, walked the plain way: every string (keys too)
    masked on its own, numbers, booleans and None kept, tuples as lists."""
    if isinstance(value, str):
        return redactor(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {_each_string_masked(redactor, k): _each_string_masked(redactor, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_each_string_masked(redactor, item) for item in value]
    return redactor(str(value))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(secret=st.text(min_size=4, max_size=20).filter(lambda s: s.strip() == s and len(set(s)) > 2),
       tree=st.recursive(
           st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
           lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
           max_leaves=12),
       hidden=st.sampled_from(["raw", "json", "base64", "hex"]))
def test_a_tree_is_masked_string_by_string(secret: str, tree: object, hidden: str) -> None:
    """``redact_tree`` (leaves that hold no secret kept where they are met, clean strings
    looked up) returns what masking each string on its own returns, twice in a row (the
    second time from the clean texts), a secret in a key or deep in a list included."""
    redactor, reference = Redactor(), Redactor()
    redactor.add(secret)
    reference.add(secret)
    form = wire_forms(secret).get(hidden, secret)
    tree = {"tree": tree, f"key {form}": [(form, 1.5)], "ids": ["i-1", "i-1", None]}
    expected = _each_string_masked(reference, tree)
    for _ in range(2):
        assert redactor.redact_tree(tree) == expected
    assert f"key {form}" not in expected  # type: ignore[operator]


def test_a_text_seen_clean_is_masked_once_it_holds_a_new_secret() -> None:
    """Short clean texts are remembered (the fast path); a secret added later, or a new
    encoding, forgets them all, so nothing once clean stays unmasked."""
    redactor = Redactor()
    redactor.add("first-secret")
    assert redactor("token-5678") == "token-5678"
    assert redactor.redact_tree({"token-5678": ("token-5678", 1)}) == {"token-5678": ["token-5678", 1]}
    redactor.add("token-5678")
    assert redactor("token-5678") == MASK
    assert redactor.redact_tree({"k": ["token-5678"]}) == {"k": [MASK]}
    encoded = base64.b32encode(b"first-secret").decode()
    assert redactor(encoded) == encoded
    redactor.add_encoding("base32", lambda s: base64.b32encode(s.encode()).decode())
    assert redactor(encoded) == MASK


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(secret=st.text(min_size=4, max_size=20).filter(lambda s: s.strip() == s and len(set(s)) > 2),
       fields=st.dictionaries(st.text(max_size=8), st.recursive(
           st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
           max_leaves=8), max_size=6),
       hidden=st.sampled_from(["raw", "json", "base64", "hex"]))
def test_a_log_events_fields_are_masked_like_trees_but_the_kept_ones(
    secret: str, fields: dict[str, object], hidden: str
) -> None:
    """``redact_fields`` (the log pipeline's fast path: numbers, booleans and None skipped,
    clean strings looked up) masks each value exactly as ``redact_tree`` does, twice in a
    row (the second time from the clean texts), and leaves the kept keys alone."""
    redactor = Redactor()
    redactor.add(secret)
    form = wire_forms(secret).get(hidden, secret)
    fields = {**fields, "message": f"echo {form}", "nested": {"body": [form, 1]}, "level": form}
    expected = {key: value if key == "level" else redactor.redact_tree(value) for key, value in fields.items()}
    for _ in range(2):
        event = dict(fields)
        redactor.redact_fields(event, frozenset({"level"}))
        assert event == expected
    assert MASK in event["message"] and MASK in event["nested"]["body"][0] and event["level"] == form
