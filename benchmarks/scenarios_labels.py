"""The labels of a detection scenario (``benchmarks.detect_scenarios``): attacks, benign events,
per-node totals, and the report's size buckets of an attack's multiplier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SIZE_BUCKETS: list[tuple[str, float, float]] = [
    ("2-3x", 2.0, 3.0),
    ("3-10x", 3.0, 10.0),
    ("10-100x", 10.0, 100.0),
    ("100-1000x", 100.0, 1000.0),
]


def size_bucket(multiplier: float) -> str:
    """The report's size bucket of a multiplier (below 2x counts as 2-3x, above 1000x as
    100-1000x)."""
    for name, _lo, hi in SIZE_BUCKETS[:-1]:
        if multiplier < hi:
            return name
    return SIZE_BUCKETS[-1][0]


@dataclass(frozen=True)
class AttackLabel:
    attack_id: str
    workspace: str
    node: str
    onset: datetime  # first attack second
    end: datetime  # last attack second
    family: str
    subtype: str
    multiplier: float
    shape: str  # step | ramp | pulsed
    duration_class: str  # short | long
    campaign: str | None
    baseline_pps: float  # expected benign pps at onset
    attack_pps: float  # full rate of the attack traffic alone
    ramp_secs: int = 0
    pulse_on_secs: int = 0
    pulse_off_secs: int = 0

    @property
    def bucket(self) -> str:
        return size_bucket(self.multiplier)

    def active(self, t: datetime) -> bool:
        """Whether the attack sends at full or ramping rate in second ``t``."""
        if t < self.onset or t > self.end:
            return False
        if self.shape != "pulsed":
            return True
        k = int((t - self.onset).total_seconds()) % (self.pulse_on_secs + self.pulse_off_secs)
        return k < self.pulse_on_secs

    def full_rate(self, t: datetime) -> bool:
        """Active and past the ramp: the node sees about ``multiplier`` x expected."""
        if not self.active(t):
            return False
        return self.shape != "ramp" or (t - self.onset).total_seconds() + 1 >= self.ramp_secs


@dataclass(frozen=True)
class BenignEvent:
    workspace: str
    node: str
    kind: str  # flash_crowd | backup | spike | silence | restart
    start: datetime
    end: datetime  # last second concerned (inclusive)
    factor: float  # peak pps factor (flash, spike), bps factor (backup), 0 (silence/restart)
    ramp_secs: int = 0


@dataclass(frozen=True)
class NodeLabel:
    workspace: str
    node: str
    kind: str
    has_flows: bool
    base_pps: float
    observed_secs: int  # seconds with rows (2-s random gaps not subtracted)
    attack_secs: int  # seconds from onset to end + 130 s of every attack
    benign_node_days: float
    feed: str = "metrics"  # metrics | flows | both
