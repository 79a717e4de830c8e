"""Prometheus metrics of runs: a textfile the runner rewrites, and ``/metrics`` of ``batchmig serve``.

Both expose the same families, built with prometheus-client's collector API from a
``RunMetrics`` record (the runner fills one from its live state, the dashboard from
a run's report):

=====================================  ========================================================
``batchmig_instances``                 instances by ``run``, ``wave`` and ``status`` (gauge)
``batchmig_calls_total``               API calls by ``run``, ``provider``, ``action``
``batchmig_throttles_total``           calls the cloud refused for its rate, same labels
``batchmig_retries_total``             calls sent again, same labels
``batchmig_limiter_rate``              the key's current rate in calls/s (``provider``,
                                       ``account``, ``region``, ``action``); below the cap
                                       while it recovers from a throttle
``batchmig_limiter_cap``               the key's cap in calls/s
``batchmig_step_duration_seconds``     step durations by ``provider``, ``step``, ``status``
                                       (histogram)
``batchmig_run_active``                1 while a runner works on the run
``batchmig_webhook_deliveries_total``  webhook events by ``webhook`` and ``outcome``
=====================================  ========================================================

A collector, not live metric objects, because the figures already exist elsewhere
(the engine's statuses, the limiter's counters, the journal): it reads them when
scraped, so nothing is counted twice and a scrape costs nothing between scrapes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from batchmig.engine.observer import RunObserver
from batchmig.report.model import LimiterKeyRecord, NotificationRecord, RunReport

STEP_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)


class StepDurations(RunObserver):
    """Step durations in histogram buckets, kept as steps finish (cheap enough for the engine)."""

    def __init__(self) -> None:
        self.histograms: dict[tuple[str, str, str], list[float]] = {}
        """(provider, step, status) -> counts per bucket (the last one is +Inf), then the sum."""

    def step_finished(self, instance: str, provider: str, step: str, seconds: float, status: str) -> None:
        self.add(provider, step, status, seconds)

    def add(self, provider: str, step: str, status: str, seconds: float) -> None:
        row = self.histograms.get((provider, step, status))
        if row is None:
            row = self.histograms[(provider, step, status)] = [0.0] * (len(STEP_BUCKETS) + 2)
        row[bisect.bisect_left(STEP_BUCKETS, seconds)] += 1
        row[-1] += seconds


@dataclass(frozen=True)
class RunMetrics:
    """What the metrics of one run are made of."""

    run: str
    active: bool
    instances: Mapping[tuple[str, str], int]
    """(wave, status) -> instances."""
    keys: Mapping[str, LimiterKeyRecord]
    """Limiter key ``provider/account/region/action`` -> its figures."""
    steps: StepDurations = field(default_factory=StepDurations)
    notifications: Sequence[NotificationRecord] = ()


def metrics_of_report(report: RunReport) -> RunMetrics:
    """The metrics of a run as its report tells them."""
    instances: dict[tuple[str, str], int] = {}
    steps = StepDurations()
    for instance in report.instances:
        instances[(instance.wave, instance.status)] = instances.get((instance.wave, instance.status), 0) + 1
        for step in instance.steps:
            if step.duration_seconds is not None:
                steps.add(instance.provider, step.name, step.status, step.duration_seconds)
    return RunMetrics(report.run, report.state == "running", instances, report.rate_limits, steps,
                      report.notifications)


class RunsCollector(Collector):
    """Exposes the metrics of the runs ``source()`` returns, read at each scrape."""

    def __init__(self, source: Callable[[], Iterable[RunMetrics]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        runs = list(self._source())
        instances = GaugeMetricFamily("batchmig_instances", "Instances by wave and status.",
                                      labels=["run", "wave", "status"])
        active = GaugeMetricFamily("batchmig_run_active", "1 while a runner works on the run.", labels=["run"])
        calls = CounterMetricFamily("batchmig_calls", "API calls sent.", labels=["run", "provider", "action"])
        throttles = CounterMetricFamily("batchmig_throttles", "Calls the cloud refused for its rate.",
                                        labels=["run", "provider", "action"])
        retries = CounterMetricFamily("batchmig_retries", "Calls sent again after a throttle, a transient "
                                      "error or a lost answer.", labels=["run", "provider", "action"])
        key_labels = ["run", "provider", "account", "region", "action"]
        rate = GaugeMetricFamily("batchmig_limiter_rate", "The limiter key's current rate (calls per second).",
                                 labels=key_labels)
        cap = GaugeMetricFamily("batchmig_limiter_cap", "The limiter key's cap (calls per second).", labels=key_labels)
        durations = HistogramMetricFamily("batchmig_step_duration_seconds", "How long steps took.",
                                          labels=["run", "provider", "step", "status"])
        deliveries = CounterMetricFamily("batchmig_webhook_deliveries", "Webhook events by outcome.",
                                         labels=["run", "webhook", "outcome"])
        for run in runs:
            active.add_metric([run.run], 1.0 if run.active else 0.0)
            for (wave, status), count in sorted(run.instances.items()):
                instances.add_metric([run.run, wave, status], count)
            by_action: dict[tuple[str, str], list[float]] = {}
            for name, record in sorted(run.keys.items()):
                provider, account, region, action = _split_key(name)
                totals = by_action.setdefault((provider, action), [0.0, 0.0, 0.0])
                totals[0] += record.admitted
                totals[1] += record.throttled
                totals[2] += record.retries
                labels = [run.run, provider, account, region, action]
                rate.add_metric(labels, record.rate if record.rate is not None else record.cap)
                cap.add_metric(labels, record.cap)
            for (provider, action), (sent, refused, retried) in sorted(by_action.items()):
                calls.add_metric([run.run, provider, action], sent)
                throttles.add_metric([run.run, provider, action], refused)
                retries.add_metric([run.run, provider, action], retried)
            for (provider, step, status), row in sorted(run.steps.histograms.items()):
                cumulative, buckets = 0.0, []
                for bound, hits in zip([*map(_bound, STEP_BUCKETS), "+Inf"], row[:-1], strict=True):
                    cumulative += hits
                    buckets.append((bound, cumulative))
                durations.add_metric([run.run, provider, step, status], buckets, row[-1])
            for hook in run.notifications:
                for outcome, count in (("delivered", hook.delivered), ("failed", hook.failed),
                                       ("dropped", hook.dropped)):
                    deliveries.add_metric([run.run, hook.name, outcome], count)
        yield from (instances, active, calls, throttles, retries, rate, cap, durations, deliveries)


def _split_key(name: str) -> tuple[str, str, str, str]:
    parts = name.split("/")
    if len(parts) != 4:
        return name, "", "", ""
    return parts[0], parts[1], parts[2], parts[3]


def _bound(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{value:.1f}"


def render_metrics(runs: Iterable[RunMetrics]) -> bytes:
    """The Prometheus text exposition of ``runs``."""
    registry = CollectorRegistry(auto_describe=False)
    snapshot = list(runs)
    registry.register(RunsCollector(lambda: snapshot))
    return generate_latest(registry)
