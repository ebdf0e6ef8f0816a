"""When a daemon that died is started again: systemd's Restart=on-failure, as a pure plan.

The lab's watchdog and the VMs' systemd units follow one policy (the units are rendered from it,
deploy/node/launch.py): a daemon that dies without being stopped is started again after
`delay` (RestartSec); if that start would be the `burst`+1-th within `interval` seconds
(StartLimitBurst, StartLimitIntervalSec), it is not started and stays failed until someone
starts it by hand, so a daemon that cannot run does not spin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    delay: float = 0.5  # RestartSec: the back-off between a death and the next start
    burst: int = 5  # StartLimitBurst: starts allowed within `interval`
    interval: float = 10.0  # StartLimitIntervalSec

    def unit_settings(self) -> dict[str, str]:
        """The same policy in systemd's words (StartLimit* belong in [Unit], the rest in [Service])."""
        return {
            "restart": "on-failure",
            "restart_sec": f"{round(self.delay * 1000)}ms",
            "start_limit_interval_sec": f"{self.interval:g}s",
            "start_limit_burst": str(self.burst),
        }


DEFAULT_POLICY = RestartPolicy()


@dataclass(frozen=True)
class GiveUp:
    """Too many starts too quickly: the daemon stays dead."""

    reason: str


def plan_restart(starts: Sequence[float], died_at: float, policy: RestartPolicy = DEFAULT_POLICY) -> float | GiveUp:
    """When to start a daemon again that was seen dead at `died_at`, or GiveUp.

    starts: when the daemon was started before (its first start and every restart), in seconds on
    the same clock; only those within `interval` of the planned start count against `burst`.
    """
    at = died_at + policy.delay
    recent = [s for s in starts if s > at - policy.interval]
    if len(recent) >= policy.burst:
        return GiveUp(f"started {len(recent)} times within {policy.interval:g}s")
    return at


def recent_starts(starts: Sequence[float], now: float, policy: RestartPolicy = DEFAULT_POLICY) -> tuple[float, ...]:
    """The starts worth remembering at `now`, plus this one (older ones no longer count)."""
    return (*(s for s in starts if s > now - policy.interval), now)
