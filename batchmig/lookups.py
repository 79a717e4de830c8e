"""Two patterns every provider needs, written once: reconcile by name, poll by list.

**Reconcile by deterministic name** (``find_created``). Few cloud creates take a
client token, so batchmig names what it creates (``Instance.resource_name``) and,
after a lost answer, looks the name up before sending the create again. A list may
lag behind writes (eventual consistency), so one empty list proves nothing:
``find_created`` asks the per-name describe where the API has one (its "not found" is
the only certain "not created"), otherwise lists again within a bounded window; a
lookup that never got a usable answer ends in ``OutcomeUnsureError`` — the instance
stops for a person rather than risk a second create. A provider whose lists can lag
without bound says ``lists_lag=True``: then an empty window is not proof either.

**Poll by list, newest first, then per id** (``poll_listed``). Describing a thousand
jobs one by one spends the describe action's whole rate; a list call sorted newest
first returns the jobs a run waits on (they are the recent ones) a page at a time.
What the pages did not show is asked about with the per-id describe, within a limit.

Both take a ``Listing``: the list call for a page offset and how to read the
records out of an answer. A page whose records cannot be read (no such field, not a
list) is a malformed answer, never "nothing there".
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchmig.errors import NotFoundError, OutcomeUnsureError, ProviderError, TransientError

if TYPE_CHECKING:
    from batchmig.plugin import Answer, Call, Caller

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Listing:
    """How to list remote things of one kind.

    ``page(offset)`` is the list call for the page starting at ``offset`` — sorted
    newest first where the API can sort, filtered (by name, by parent) where it can
    filter. ``items(answer)`` returns the page's records: raise ``KeyError`` (or
    return something that is not a list) when the answer lacks them. A page shorter
    than ``page_size`` is the last.
    """

    page: Callable[[int], Call]
    items: Callable[[Answer], Sequence[Record]]
    page_size: int = 100


@dataclass(frozen=True)
class Seen:
    """What ``poll_listed`` found about one id: its record (None: the per-id describe
    says it does not exist, see ``gone``) and the request id of the answer it came from."""

    record: Record | None
    request_id: str | None
    gone: NotFoundError | None = None


def records(listing: Listing, answer: Answer) -> list[Record]:
    """The records of a page, or ``TransientError("MalformedAnswer")``."""
    try:
        found = listing.items(answer)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise TransientError("MalformedAnswer", f"the list answer has no records ({type(exc).__name__}: {exc})",
                             request_id=answer.request_id) from exc
    if type(found) is list and all(type(record) is dict for record in found):
        return found  # what a decoded JSON answer holds: no need to ask the ABCs, record by record
    if not isinstance(found, Sequence) or isinstance(found, str | bytes) or not all(
        isinstance(record, Mapping) for record in found
    ):
        raise TransientError("MalformedAnswer", f"the list answer's records are not a list: {type(found).__name__}",
                             request_id=answer.request_id)
    return list(found)


class _TooManyPages(Exception):
    """The search had more pages than ``max_pages``: what it did not read may hold the resource."""


async def _scan(caller: Caller, listing: Listing, matches: Callable[[Record], bool],
                max_pages: int) -> Record | None:
    for number in range(max_pages):
        page = records(listing, await caller.read(listing.page(number * listing.page_size)))
        for record in page:
            if matches(record):
                return record
        if len(page) < listing.page_size:
            return None
    raise _TooManyPages(f"the search fills more than {max_pages} pages of {listing.page_size}")


async def find_created(
    caller: Caller,
    listing: Listing,
    matches: Callable[[Record], bool],
    *,
    what: str,
    describe: Call | None = None,
    describe_record: Callable[[Answer], Record | None] | None = None,
    max_pages: int = 5,
    relists: int = 3,
    pause: float = 2.0,
    lists_lag: bool = False,
) -> Record | None:
    """The record of the resource a lost create made, or None if it surely was not made.

    ``matches`` recognises the resource (its deterministic name, the files it was
    given...); ``what`` names it for messages (``"the DTS job bm-db01-…"``).

    ``describe`` is a per-name read that does not lag (if the API has one):
    ``describe_record(answer)`` returns the record from its answer (default: the
    payload), and its ``NotFoundError`` is taken as proof. Without one, the listing
    is read ``1 + relists`` times, ``pause`` seconds apart: found in any → found;
    empty in all → None, unless ``lists_lag`` (lists can lag longer than that window)
    — then, as when no list answer was usable, ``OutcomeUnsureError`` is raised
    with the evidence: a person must look before anything is created again. So is a
    search with more than ``max_pages`` pages (of which it read none without a match):
    a page it did not read is never taken as "not there".
    """
    problems: list[str] = []
    for attempt in range(1 + relists):
        if attempt:
            await caller.sleep(pause)
        try:
            found = await _scan(caller, listing, matches, max_pages)
        except ProviderError as exc:
            problems.append(f"{exc.code}: {exc.message}")
            found = None
        except _TooManyPages as exc:  # an unread page is not "not there": no second create on it
            raise OutcomeUnsureError(
                "ReconcileUnsure",
                f"cannot tell whether {what} was created: {exc}, and it is not in those. "
                "Look it up in the cloud's console before resuming",
            ) from None
        if found is not None:
            return found
        if describe is not None:
            return await _describe(caller, describe, describe_record)
        if attempt == relists and not problems and not lists_lag:
            return None
    window = f"{1 + relists} lists over {relists * pause:g}s"
    if problems and len(problems) == 1 + relists:
        why = f"no list answer was usable ({'; '.join(problems[-2:])})"
    elif problems:
        why = f"{what} was in none of {window}, but some lists failed ({problems[-1]})"
    else:
        why = f"{what} was in none of {window}, and these lists can lag longer"
    raise OutcomeUnsureError(
        "ReconcileUnsure",
        f"cannot tell whether {what} was created: {why}. Look it up in the cloud's console before resuming",
    )


async def _describe(
    caller: Caller, call: Call, describe_record: Callable[[Answer], Record | None] | None
) -> Record | None:
    try:
        answer = await caller.read(call)
    except NotFoundError:
        return None
    record = describe_record(answer) if describe_record else answer.payload
    return record or None


async def poll_listed(
    caller: Caller,
    listing: Listing,
    wanted: Collection[str],
    key: Callable[[Record], object],
    *,
    describe: Callable[[str], Call] | None = None,
    describe_record: Callable[[Answer, str], Record | None] | None = None,
    max_pages: int = 1,
    max_describes: int | None = None,
) -> dict[str, Seen]:
    """Find the records of ``wanted`` ids: list pages (newest first), then describe the rest.

    Reads up to ``max_pages`` pages, stopping once every id was seen; then asks
    ``describe(id)`` about up to ``max_describes`` of those not seen (in id order).
    ``describe_record(answer, id)`` picks the record from a describe's answer
    (default: the one of the listing's records whose ``key`` is the id).
    An id missing from the result was not seen: report it ``running``. Malformed
    answers raise ``TransientError("MalformedAnswer")``, which the engine retries.
    """
    want = {str(item) for item in wanted}
    found: dict[str, Seen] = {}
    for number in range(max_pages):
        if want <= found.keys():
            break
        answer = await caller.read(listing.page(number * listing.page_size))
        page = records(listing, answer)
        for record in page:
            ident = str(key(record))
            if ident in want:
                found[ident] = Seen(record, answer.request_id)
        if len(page) < listing.page_size:
            break
    if describe is None:
        return found
    unseen = sorted(want - found.keys())
    for ident in unseen[:max_describes]:
        try:
            answer = await caller.read(describe(ident))
        except NotFoundError as exc:
            found[ident] = Seen(None, exc.request_id, exc)
            continue
        described: Record | None
        if describe_record is not None:
            described = describe_record(answer, ident)
        else:
            described = next((r for r in records(listing, answer) if str(key(r)) == ident), None)
        if described is not None:
            found[ident] = Seen(described, answer.request_id)
    return found
