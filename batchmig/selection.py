"""Choosing instances of a run: by id or glob, status, wave or tag.

``batchmig status``, ``cutover`` and ``retry`` share one selection: options of one
kind widen it (``--wave a --wave b``: either wave), options of different kinds narrow
it (``--wave main --status failed``: failed instances of wave main). A selector that
matches no instance of the run is an error that names it, so a typo never releases or
retries nothing (or something else) quietly.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from batchmig.errors import UsageError
from batchmig.report.model import InstanceReport


@dataclass(frozen=True)
class Selection:
    ids: tuple[str, ...] = ()
    """Instance ids or globs (``crm-*``)."""
    statuses: tuple[str, ...] = ()
    waves: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    """``(key, value)`` pairs; a value of ``*`` matches any value of the key."""

    @classmethod
    def parse(
        cls, ids: Iterable[str] = (), statuses: Iterable[str] = (), waves: Iterable[str] = (),
        tags: Iterable[str] = (),
    ) -> Selection:
        """From command-line values; statuses and waves may be comma-separated."""
        pairs = []
        for tag in tags:
            key, sep, value = tag.partition("=")
            if not key or not sep:
                raise UsageError(f"--tag {tag!r}: write KEY=VALUE (VALUE may be *)")
            pairs.append((key.strip(), value.strip()))
        return cls(tuple(ids), _split(statuses), _split(waves), tuple(pairs))

    def __bool__(self) -> bool:
        return bool(self.ids or self.statuses or self.waves or self.tags)

    def describe(self) -> str:
        """The selection as command-line options, for messages and the audit trail."""
        parts = [f"--select {i}" for i in self.ids]
        parts += [f"--status {','.join(self.statuses)}"] if self.statuses else []
        parts += [f"--wave {w}" for w in self.waves]
        parts += [f"--tag {k}={v}" for k, v in self.tags]
        return " ".join(parts) or "(all)"

    def matches(self, instance: InstanceReport) -> bool:
        return (
            (not self.ids or any(fnmatch.fnmatchcase(instance.id, p) for p in self.ids))
            and (not self.statuses or instance.status in self.statuses)
            and (not self.waves or instance.wave in self.waves)
            and (not self.tags or any(_tag_matches(instance, key, value) for key, value in self.tags))
        )

    def choose(self, instances: Sequence[InstanceReport]) -> list[InstanceReport]:
        """The matching instances, in plan order; a selector that matches none of the
        run's instances is a ``UsageError`` naming it."""
        unknown = [f"--select {p}" for p in self.ids if not any(fnmatch.fnmatchcase(i.id, p) for i in instances)]
        unknown += [f"--wave {w}" for w in self.waves if not any(i.wave == w for i in instances)]
        unknown += [f"--tag {k}={v}" for k, v in self.tags if not any(_tag_matches(i, k, v) for i in instances)]
        if unknown:
            waves = sorted({i.wave for i in instances})
            raise UsageError(f"no instance of the run matches {', '.join(unknown)}",
                             f"the run's waves: {', '.join(waves)}; `batchmig status RUN` lists its instances")
        return [instance for instance in instances if self.matches(instance)]


def _tag_matches(instance: InstanceReport, key: str, value: str) -> bool:
    return key in instance.tags and (value == "*" or instance.tags[key] == value)


def _split(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())
