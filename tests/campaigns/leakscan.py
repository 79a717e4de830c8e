"""Search everything a run wrote for every secret, in every form a secret can travel in.

Deliberately independent of ``batchmig.redaction``: the forms are computed here from
the standard library, and the "core" of a secret inside a longer base64 text is found
by experiment — encode it between all-zero and all-one neighbours and keep the
characters that come out the same — rather than by the redactor's arithmetic.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus


def _json(text: str, ascii_only: bool = True) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


def base64_cores(data: bytes) -> dict[str, str]:
    """What any base64 text containing ``data`` contains, for each alignment and alphabet."""
    cores = {}
    for alphabet, encode in (("base64", base64.b64encode), ("urlsafe base64", base64.urlsafe_b64encode)):
        for offset in range(3):
            zeros = encode(bytes(offset) + data + bytes(2)).decode()
            ones = encode(b"\xff" * offset + data + b"\xff\xff").decode()
            same = "".join(a if a == b else "\0" for a, b in zip(zeros, ones, strict=True))
            cores[f"{alphabet} inside a longer text, alignment {offset}"] = max(same.split("\0"), key=len)
    return cores


def wire_forms(secret: str) -> dict[str, bytes]:
    """Name -> the bytes of each form (UTF-8), forms shorter than 4 characters left out."""
    texts = {
        "raw": secret,
        "JSON-escaped": _json(secret),
        "JSON-escaped, UTF-8": _json(secret, False),
        "JSON-escaped twice": _json(_json(secret)),
        "JSON-escaped twice, UTF-8": _json(_json(secret, False), False),
        "JSON-escaped three times": _json(_json(_json(secret))),
        "URL-encoded": quote(secret, safe=""),
        "URL-encoded, / kept": quote(secret),
        "URL-encoded (plus)": quote_plus(secret),
        "URL-encoded JSON": quote(_json(secret), safe=""),
        "hex": secret.encode().hex(),
        "HEX": secret.encode().hex().upper(),
    }
    for label, text in (("", secret), (" of the JSON-escaped", _json(secret))):
        data = text.encode()
        texts[f"base64{label}"] = base64.b64encode(data).decode()
        texts[f"base64{label}, no padding"] = base64.b64encode(data).decode().rstrip("=")
        texts[f"urlsafe base64{label}"] = base64.urlsafe_b64encode(data).decode()
        texts[f"urlsafe base64{label}, no padding"] = base64.urlsafe_b64encode(data).decode().rstrip("=")
        texts.update({f"{name}{label}": core for name, core in base64_cores(data).items()})
    unique: dict[bytes, str] = {}
    for name, text in texts.items():
        if len(text) >= 4:
            unique.setdefault(text.encode(), name)
    return {name: form for form, name in unique.items()}


def everything_in(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` as bytes, plus every SQLite database's cells as text
    (a long value can be split over overflow pages, where a byte search cannot see it)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        where = str(path.relative_to(directory.parent))
        found[where] = path.read_bytes()
        if found[where].startswith(b"SQLite format 3\0"):
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                found[f"{where} (cells)"] = "\n".join(db.iterdump()).encode()
            finally:
                db.close()
    return found


@dataclass
class Scan:
    secrets: Mapping[str, str]
    sources: int = 0
    bytes_scanned: int = 0
    forms: int = 0
    occurrences: list[str] = field(default_factory=list)

    def search(self, texts: Mapping[str, bytes]) -> Scan:
        forms = {name: wire_forms(value) for name, value in self.secrets.items()}
        self.forms = sum(map(len, forms.values()))
        for where, data in texts.items():
            self.sources += 1
            self.bytes_scanned += len(data)
            for secret, encoded in forms.items():
                self.occurrences += [f"{where}: {secret} ({form_name})"
                                     for form_name, form in encoded.items() if form in data]
        return self

    def figures(self) -> dict[str, object]:
        return {"secret_values": len(self.secrets), "forms_per_value": round(self.forms / len(self.secrets), 1),
                "value_forms_scanned": self.forms, "outputs_scanned": self.sources,
                "bytes_scanned": self.bytes_scanned, "occurrences": len(self.occurrences)}


def outputs(*named: tuple[str, str | bytes]) -> dict[str, bytes]:
    return {name: text.encode() if isinstance(text, str) else text for name, text in named}


def merged(*groups: Iterable[tuple[str, bytes]] | Mapping[str, bytes]) -> dict[str, bytes]:
    result: dict[str, bytes] = {}
    for group in groups:
        result.update(group.items() if isinstance(group, Mapping) else group)
    return result
