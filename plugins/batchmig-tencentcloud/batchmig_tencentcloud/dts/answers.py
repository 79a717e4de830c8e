"""What batchmig reads of a DescribeMigrateJobs answer, and nothing more.

A page of that list carries 100 jobs of about 1.5 kB each (source, target, options,
every step), and a poll wants four fields of each: decoding the whole page was the
runner's largest single cost per call (6% of its CPU in the overhead benchmark, and
the cyclic collector's work over the dozen dicts each job became). ``JOBS_ANSWER``
decodes only the fields below, into plain dicts (the payload the steps, pollers and
pre-flight already read), about three times faster; every other field is skipped
unread. An answer of another shape (a field of an unexpected type, an error) is not
judged here: ``TencentConnection`` then decodes it in full, as any other answer.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

__all__ = ["JOBS_ANSWER"]


class _Option(TypedDict, total=False):
    MigrateType: Any


class _Detail(TypedDict, total=False):
    Progress: Any


class _Error(TypedDict, total=False):
    ErrorLog: Any


class _Job(TypedDict, total=False):
    JobId: Any
    JobName: Any
    Status: Any
    MigrateOption: _Option | None
    Detail: _Detail | None
    ErrorInfo: list[_Error] | None


class _Response(TypedDict, total=False):
    RequestId: Any
    Error: Any
    TotalCount: Any
    JobList: list[_Job] | None


class _Envelope(TypedDict, total=False):
    Response: _Response


JOBS_ANSWER = msgspec.json.Decoder(_Envelope)
"""DescribeMigrateJobs' envelope with only the fields batchmig reads of each job."""
