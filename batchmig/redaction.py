"""Keep secret values out of every output, in every form a secret takes on its way out.

A secret rarely leaks as typed. A cloud (or a proxy) that quotes a refused request
in its error message returns it as it was sent — a password inside a JSON body is
JSON-escaped, a query parameter URL-encoded — and its own answer escapes it once
more; a proxy may base64 the whole body. So every registered secret is masked in
all these forms:

* raw; JSON-escaped once, twice and three times, in the dialects encoders use
  (``ensure_ascii`` or not, ``\\/`` for ``/``, the HTML-safe ``\\u003c`` of Go and
  Gson, lower- or upper-case ``\\u`` digits); as a Python ``repr`` shows it;
* URL-encoded the ways clients do it (``quote`` with and without ``/`` safe,
  ``quote_plus``, JavaScript's ``encodeURIComponent``, Java's ``URLEncoder``), with
  upper- or lower-case hex digits;
* base64, standard and URL-safe alphabets, of the raw, JSON-escaped and URL-encoded
  secret. A secret inside a longer base64 string starts at one of three bit
  alignments, so for each alignment the *core* is masked: the characters that depend
  on the secret's bytes alone, which neither padding nor neighbours change;
* hex, lower and upper case;
* as HTML/XML text and attributes and CSV fields quote it (``&amp;``, ``&#x27;``,
  ``""``), for the report files rendered from these texts;
* whatever encodings a provider registers (``add_encoding``), and their forms above.

Speed matters: every log line passes through here. All forms of a set of secrets
compile into one regular expression shaped as a trie (a shared prefix is matched
once), so a line without a secret costs one scan of it — see ``docs/operations.md``
for the measured cost. A line that matches is masked over the union of all
overlapping matches, so masking one secret never leaves a piece of another visible.
A short text found clean (a key, a status: they repeat in every event) is remembered
until the set of secrets changes. Expressions are rebuilt only when the set of
secrets changes, in tiers like a binary counter (a new secret compiles alone,
equal-sized tiers merge), so a run that learns a thousand passwords one at a time
compiles O(n log n) forms, not O(n²).
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not redacted: masking every "abc" would garble all output."""

Encoding = Callable[[str], str]
CLEAN_TEXT_LENGTH = 64
CLEAN_TEXTS = 4096
"""Texts up to ``CLEAN_TEXT_LENGTH`` found clean are remembered, at most ``CLEAN_TEXTS``
of them (then forgotten at once and learned again)."""


# ------------------------------------------------------------------ the forms


def _upper_unicode_escapes(text: str) -> str:
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), text)


def _json_plain(text: str) -> set[str]:
    """The string as a JSON encoder writes it between the quotes, ASCII-only or not."""
    return {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}


def _json_dialects(text: str) -> set[str]:
    forms = set()
    for plain in _json_plain(text):
        html_safe = plain
        for char in "<>&":  # Go's encoding/json; Gson also escapes = and '
            html_safe = html_safe.replace(char, f"\\u{ord(char):04x}")
        gson = html_safe.replace("=", "\\u003d").replace("'", "\\u0027")
        for form in (plain, plain.replace("/", "\\/"), html_safe, gson):
            forms |= {form, _upper_unicode_escapes(form)}
    return forms


def _json_forms(secret: str) -> set[str]:
    once = _json_dialects(secret) | {repr(secret)[1:-1]}
    twice = {form for text in once for form in _json_dialects(text)}
    thrice = {form for text in twice for form in _json_plain(text)}
    return {secret} | once | twice | thrice


def _url_forms(text: str) -> set[str]:
    forms = {
        quote(text, safe=""),
        quote(text, safe="/"),
        quote_plus(text, safe=""),
        quote(text, safe="!~*'()"),  # encodeURIComponent
        quote_plus(text, safe="*"),  # java.net.URLEncoder
    }
    return forms | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in forms}


def _base64_cores(data: bytes) -> set[str]:
    """What every base64 text containing ``data`` contains, at each of the 3 alignments."""
    cores = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            encoded = encode(bytes(offset) + data).decode("ascii")
            first = -(-offset * 8 // 6)  # the first character with no bit of the prefix
            last = (offset + len(data)) * 8 // 6  # the characters with no bit of what follows
            cores.add(encoded[first:last])
    return cores


def _markup_forms(text: str) -> set[str]:
    escaped = html.escape(text)
    return {escaped, html.escape(text, quote=False), escaped.replace("&#x27;", "&#39;"),
            escaped.replace("&#x27;", "&apos;"), text.replace('"', '""')}


def _binary_forms(text: str) -> set[str]:
    data = text.encode("utf-8")
    forms = {data.hex(), data.hex().upper()}
    for core in _base64_cores(data):
        forms |= {core, core.replace("/", "\\/")} | _url_forms(core)
    return forms


def encoded_forms(secret: str, encodings: Iterable[Encoding] = ()) -> frozenset[str]:
    """Every form of ``secret`` the redactor masks (see the module docstring)."""
    json_forms = _json_forms(secret)
    sent = {secret} | _json_plain(secret) | {quote(secret, safe=""), quote_plus(secret, safe="")}
    forms = set(json_forms)
    for text in {secret} | _json_plain(secret):
        forms |= _url_forms(text) | _markup_forms(text)
    for text in sent:
        forms |= _binary_forms(text)
    for encode in encodings:
        try:
            extra = encode(secret)
        except Exception:  # a provider's encoding that cannot take this value has no form of it
            continue
        if extra and extra != secret:
            forms |= encoded_forms(extra)
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


# ------------------------------------------------------------- the matcher


def _trie_pattern(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words``, longest first at each position."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        pieces = []
        for char, child in sorted(node.items()):
            if not char:
                continue
            run = [char]
            while len(child) == 1 and "" not in child:  # a chain without branches: no group needed
                (char, child), = child.items()
                run.append(char)
            pieces.append(re.escape("".join(run)) + emit(child))
        if not pieces:
            return ""
        body = pieces[0] if len(pieces) == 1 else "(?:" + "|".join(pieces) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(root)


@dataclass(frozen=True)
class _Tier:
    secrets: frozenset[str]
    any_form: re.Pattern[str]
    every_start: re.Pattern[str]
    """Zero-width matches at every position where a form starts; group 1 is the form."""


class Redactor:
    """Replaces every form of every registered secret with ``***``.

    ``redactor(text)`` masks a string; ``redactor.redact_tree(value)`` masks every
    string inside dicts, lists and tuples (and renders other objects as masked
    strings), which is how structured output (JSON) stays valid.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pending: list[str] = []
        self._encodings: dict[str, Encoding] = {}
        self._tiers: tuple[_Tier, ...] = ()
        self._clean: tuple[tuple[_Tier, ...], set[str]] = ((), set())
        """Short texts already scanned and found clean, with the tiers they were scanned
        against (one pair, replaced at once: a text checked against older tiers never
        lands among those clean for newer ones). Keys and statuses repeat in every
        event; a set lookup is much cheaper than a scan."""

    def add(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH or secret in self._secrets:
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets.add(secret)
                self._pending.append(secret)

    def add_encoding(self, name: str, encode: Encoding) -> None:
        """Also mask ``encode(secret)`` (in all its forms) for every secret, past and future.

        ``name`` identifies the encoding, so registering it again (every connection
        may) changes nothing. ``encode`` is tried on a sample value at once: an
        encoding that fails there is a plugin bug and raises here, not in a log call.
        """
        if name in self._encodings:
            return
        sample = encode("batchmig-sample-secret")
        if not isinstance(sample, str):
            raise TypeError(f"secret encoding {name!r} must return a str, not {type(sample).__name__}")
        with self._lock:
            self._encodings[name] = encode
            self._pending = sorted(self._secrets)
            self._tiers = ()

    def forms(self, secret: str) -> frozenset[str]:
        return encoded_forms(secret, list(self._encodings.values()))

    def _compile(self, secrets: frozenset[str]) -> _Tier:
        forms: set[str] = set()
        for secret in secrets:
            forms |= self.forms(secret)
        pattern = _trie_pattern(forms)
        return _Tier(secrets, re.compile(pattern), re.compile(f"(?=({pattern}))"))

    def _current_tiers(self) -> tuple[_Tier, ...]:
        if self._pending:
            with self._lock:
                if self._pending:
                    tiers = [*self._tiers, self._compile(frozenset(self._pending))]
                    self._pending = []
                    while len(tiers) > 1 and len(tiers[-2].secrets) <= len(tiers[-1].secrets):
                        newest = tiers.pop()
                        tiers[-1] = self._compile(tiers[-1].secrets | newest.secrets)
                    self._tiers = tuple(tiers)
        return self._tiers

    @property
    def holds_secrets(self) -> bool:
        """Whether any secret is registered: until one is, nothing can need masking (a
        ``batchmig status`` process resolves no credentials)."""
        return bool(self._secrets)

    def _clean_texts(self) -> tuple[tuple[_Tier, ...], set[str]]:
        """The current tiers, and the texts known clean against them."""
        tiers = self._current_tiers() if self._pending else self._tiers
        clean_for, clean = self._clean
        if clean_for is not tiers:  # a secret was added since: nothing is known clean any more
            clean = set()
            self._clean = (tiers, clean)
        return tiers, clean

    def __call__(self, text: str) -> str:
        if not text:
            return text
        tiers, clean = self._clean_texts()
        return text if text in clean else self._scan(text, tiers, clean)

    def _scan(self, text: str, tiers: tuple[_Tier, ...], clean: set[str]) -> str:
        """``text`` masked (``clean``: the texts known clean against ``tiers``)."""
        for tier in tiers:
            if tier.any_form.search(text):
                break
        else:  # the common case, kept cheap: one scan per tier, nothing allocated
            if len(text) <= CLEAN_TEXT_LENGTH:
                if len(clean) >= CLEAN_TEXTS:
                    clean.clear()
                clean.add(text)
            return text
        spans = sorted((match.start(), match.end(1)) for tier in tiers for match in tier.every_start.finditer(text))
        pieces, kept_from = [], 0
        merged_start, merged_end = spans[0]
        for start, end in [*spans[1:], (len(text) + 1, len(text) + 1)]:
            if start <= merged_end:
                merged_end = max(merged_end, end)
                continue
            pieces += [text[kept_from:merged_start], MASK]
            kept_from = merged_end
            merged_start, merged_end = start, end
        pieces.append(text[kept_from:])
        return "".join(pieces)

    def redact_fields(self, fields: dict[str, Any], keep: frozenset[str] = frozenset()) -> None:
        """Mask the values of ``fields`` in place, as ``redact_tree`` would, but those of the
        keys in ``keep`` (a log event: what every event carries costs next to nothing —
        numbers, booleans and None hold no secret, and a string found clean before is
        looked up, not scanned)."""
        clean = self._clean_texts()[1]
        for key, value in fields.items():
            kind = type(value)
            if kind is str:
                if value not in clean and key not in keep:
                    fields[key] = self(value)
            elif not (kind is int or kind is float or kind is bool or value is None or key in keep):
                fields[key] = self.redact_tree(value)

    def redact_tree(self, value: Any) -> Any:
        """``value`` with every string in it masked; other leaves are kept if JSON-native."""
        tiers, clean = self._clean_texts()
        return self._walk(value, tiers, clean)

    def _walk(self, value: Any, tiers: tuple[_Tier, ...], clean: set[str]) -> Any:
        # The usual types first, by identity (isinstance on ABCs is slow); a leaf that
        # holds no secret (a number, None, a string found clean before) is kept where it
        # is met, without a call: keys, ids and statuses repeat in every record.
        kind, native = value.__class__, _NATIVE_LEAVES
        if kind is dict:
            return {key if key.__class__ is str and key in clean else self._walk(key, tiers, clean):
                    item if item.__class__ in native or (item.__class__ is str and item in clean)
                    else self._walk(item, tiers, clean)
                    for key, item in value.items()}
        if kind is list or kind is tuple:
            return [item if item.__class__ in native or (item.__class__ is str and item in clean)
                    else self._walk(item, tiers, clean) for item in value]
        if isinstance(value, str):
            return value if not value or value in clean else self._scan(value, tiers, clean)
        if kind in native or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {self._walk(key, tiers, clean): self._walk(item, tiers, clean) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(item, tiers, clean) for item in value]
        return self._walk(str(value), tiers, clean)


_NATIVE_LEAVES = frozenset({int, float, bool, type(None)})
"""Leaves a tree keeps as they are: no secret hides in them."""


REDACTOR = Redactor()
"""The process's redactor: credentials resolved by the core and secrets registered by
providers (``batchmig.plugin.register_secret``) are added to it."""
