"""A run's plan: everything a run obeys, compiled once from the policy, the defaults and the options.

Why a value rather than attribute lookups on the sandbox: every enforcer (the guard, the
monitor, the output cap, the deadline, the verdicts) reads the same frozen facts, the audit
log records exactly them in ``lifecycle/start``, and :class:`~workbench.runtime.RunResult`
keeps them, so nothing is turned into text and parsed back.  Limits remember the rule that
set them (:meth:`RunPlan.rule_for`): a violation names the rule it broke, not the first rule
of its domain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Mapping, Union

from ..errors import PolicyError, SandboxError
from ..policy import Capability, Limits, Policy, format_duration, format_size
from ..policy.limits import FIELD_DOMAINS, limit_sources
from .device import NodeSpec, Service
from .device_plan import plan_device
from .mounts import SCRATCH, Mount, file_grants_of, plan_mounts

__all__ = ["OnViolation", "OnViolationLike", "LimitRule", "RunPlan", "CLOCK_GRAIN_NS"]

#: clock granularity without ``clock:precise``: 1 ms, so timing side channels get coarse data
CLOCK_GRAIN_NS = 1_000_000


class OnViolation(StrEnum):
    """What a refusal does to the run: interpreted here, and only here."""

    DENY = "deny"
    """Refuse the call (the guest sees an error) and go on."""
    KILL = "kill"
    """Refuse and end the run at the first violation."""
    AUDIT = "audit"
    """Learn mode: allow everything in the workspace, record what a policy would have refused."""

    @classmethod
    def parse(cls, value: OnViolationLike) -> OnViolation:
        try:
            return cls(value)
        except ValueError:
            raise SandboxError(
                f"unknown on_violation {value!r}", hint="use 'deny' (default), 'kill' or 'audit'"
            ) from None

    @property
    def kills(self) -> bool:
        return self is OnViolation.KILL

    @property
    def learns(self) -> bool:
        return self is OnViolation.AUDIT

    @property
    def refusal(self) -> Literal["kill", "deny"]:
        """The decision recorded for a refused limit (a grow, the output cap)."""
        return "kill" if self is OnViolation.KILL else "deny"


OnViolationLike = Union[OnViolation, Literal["deny", "kill", "audit"]]


@dataclass(frozen=True)
class LimitRule:
    """The rule behind one :class:`Limits` field: the policy's own capability, or a default
    written as the capability that would set it."""

    field: str
    capability: str
    default: bool


def _spelled(field_name: str, value: int | float) -> str:
    """A limit value as its capability would write it."""
    if field_name.endswith("_bytes"):
        return format_size(int(value))
    if field_name == "cpu_share":
        return f"{value * 100:g}%"
    if field_name.endswith("_seconds"):
        return format_duration(value)
    return str(int(value))


@dataclass(frozen=True, eq=False)
class RunPlan:
    """The frozen facts of every run of one sandbox.  Make one with :meth:`compile`."""

    policy: Policy
    limits: Limits
    rules: tuple[LimitRule, ...]
    mounts: tuple[Mount, ...]
    root: Path
    environment: tuple[tuple[str, str], ...]
    clock_grain_ns: int
    on_violation: OnViolation
    file_grants: frozenset[str] = field(default=frozenset())
    #: the nodes of ``/dev/workbench`` (none: no device folder at all), see device_plan.py
    device: tuple[NodeSpec, ...] = ()
    #: modules that called this one, outermost first, then this one (empty for a top-level run)
    caller_chain: tuple[str, ...] = ()
    #: the sandbox's secrets (workbench.network.Secrets): for its http node and the modules it calls
    secrets: Any = field(default=None, repr=False)

    @classmethod
    def compile(
        cls,
        policy: Policy,
        *,
        root: Path,
        defaults: Limits,
        on_violation: OnViolationLike = OnViolation.DENY,
        environ: Mapping[str, str] | None = None,
        services: Mapping[str, Service] | None = None,
        caller_chain: tuple[str, ...] = (),
        secrets: Any = None,
    ) -> RunPlan:
        """Check and plan everything once: limits with their rules, mounts (checking every granted
        folder now), the environment and the clock.  Bad input raises our own errors here."""
        mode = OnViolation.parse(on_violation)
        limits = policy.limits.with_defaults(defaults)
        sources = limit_sources(policy.capabilities)
        rules = []
        for name, value in vars(limits).items():
            if value is None:
                continue
            source = sources.get(name)
            if source is not None:
                rules.append(LimitRule(name, str(source), False))
            else:
                text = f"{FIELD_DOMAINS[name]}:limit:{_spelled(name, value)}"
                rules.append(LimitRule(name, str(Capability.parse(text)), True))  # canonical, as a policy's
        if mode.learns:
            mounts: tuple[Mount, ...] = (
                Mount("/", str(root), True, "learn-mode", False, False),
                Mount(SCRATCH, "<scratch>", True, "learn-mode", True, False),
            )
        else:
            try:
                mounts = tuple(plan_mounts(policy, root))
            except OSError as exc:  # a granted folder the host cannot look at (EACCES, ENAMETOOLONG, ...)
                raise PolicyError(
                    f"cannot use a granted folder: {exc.strerror or exc} ({exc.filename})",
                    hint="check the folder's path and permissions, or grant another one",
                ) from exc
        environment = tuple(policy.environment(os.environ if environ is None else environ).items())
        return cls(
            policy=policy,
            limits=limits,
            rules=tuple(rules),
            mounts=mounts,
            root=root,
            environment=environment,
            clock_grain_ns=0 if policy.clock_precise else CLOCK_GRAIN_NS,
            on_violation=mode,
            file_grants=file_grants_of(mounts),
            device=plan_device(policy, services, secrets),
            caller_chain=caller_chain,
            secrets=secrets,
        )

    def rule_for(self, field_name: str) -> str | None:
        """The capability that set limit ``field_name`` (``"cpu_seconds"``), or None when unlimited."""
        for rule in self.rules:
            if rule.field == field_name:
                return rule.capability
        return None

    @property
    def fine(self) -> bool:
        """Does the guard decide calls one by one in some mount (rules finer than a folder)?"""
        return bool(self.device) or any(mount.fine for mount in self.mounts)  # device writes are capped

    @property
    def scratch(self) -> bool:
        """Does a run need a private ``/tmp``?"""
        return any(mount.scratch for mount in self.mounts)

    def record(self) -> dict[str, Any]:
        """What ``lifecycle/start`` records: every limit and its rule, the mounts, the names of the
        environment variables (never their values), the clock grain and the violation mode.
        Worked out once (the plan is frozen); a fresh top-level dict each call."""
        return dict(self._record)

    @cached_property
    def _record(self) -> dict[str, Any]:
        return {
            "limits": {k: v for k, v in vars(self.limits).items() if v is not None},
            "rules": {rule.field: rule.capability for rule in self.rules},
            "defaults": sorted(rule.field for rule in self.rules if rule.default),
            "mounts": [str(m) for m in self.mounts],
            "env": [name for name, _ in self.environment],
            "clock_grain_ns": self.clock_grain_ns,
            "on_violation": str(self.on_violation),
            **({"device": [node.name for node in self.device]} if self.device else {}),
            **({"caller_chain": list(self.caller_chain)} if self.caller_chain else {}),
        }
