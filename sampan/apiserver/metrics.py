"""Request counters and latency histograms in the Prometheus text format."""

from __future__ import annotations

import bisect
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
Labels = tuple[str, str, str, str, str]  # verb, group, version, resource, subresource


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[Labels, str], int] = defaultdict(int)
        self.latency: dict[Labels, list[int]] = {}
        self.latency_sum: dict[Labels, float] = defaultdict(float)
        self.latency_count: dict[Labels, int] = defaultdict(int)
        self.inflight = 0

    def observe(self, labels: Labels, code: int, seconds: float) -> None:
        self.requests[(labels, str(code))] += 1
        if labels[0] == "WATCH":
            return  # a watch lasts as long as the client wants; its latency says nothing
        counts = self.latency.setdefault(labels, [0] * len(BUCKETS))
        index = bisect.bisect_left(BUCKETS, seconds)
        for i in range(index, len(BUCKETS)):
            counts[i] += 1
        self.latency_sum[labels] += seconds
        self.latency_count[labels] += 1

    @staticmethod
    def _label_text(labels: Labels, **extra: str) -> str:
        names = ("verb", "group", "version", "resource", "subresource")
        pairs = list(zip(names, labels)) + list(extra.items())
        return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)

    def render(self) -> str:
        out = [
            "# HELP apiserver_request_total Counter of apiserver requests broken out by verb, resource and code.",
            "# TYPE apiserver_request_total counter",
        ]
        for (labels, code), n in sorted(self.requests.items()):
            out.append(f"apiserver_request_total{{{self._label_text(labels, code=code)}}} {n}")
        out += [
            "# HELP apiserver_request_duration_seconds Response latency distribution in seconds by verb and resource.",
            "# TYPE apiserver_request_duration_seconds histogram",
        ]
        for labels, counts in sorted(self.latency.items()):
            for bound, count in zip(BUCKETS, counts):
                out.append(
                    f"apiserver_request_duration_seconds_bucket{{{self._label_text(labels, le=str(bound))}}} {count}"
                )
            total = self.latency_count[labels]
            out.append(f"apiserver_request_duration_seconds_bucket{{{self._label_text(labels, le='+Inf')}}} {total}")
            out.append(
                f"apiserver_request_duration_seconds_sum{{{self._label_text(labels)}}} {self.latency_sum[labels]:.6f}"
            )
            out.append(f"apiserver_request_duration_seconds_count{{{self._label_text(labels)}}} {total}")
        out += [
            "# HELP apiserver_current_inflight_requests Requests being served right now.",
            "# TYPE apiserver_current_inflight_requests gauge",
            f"apiserver_current_inflight_requests {self.inflight}",
        ]
        return "\n".join(out) + "\n"
