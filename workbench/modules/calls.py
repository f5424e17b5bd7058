"""Calls between modules: a callee runs in a fresh sandbox with what it asks for ∩ its caller's rights.

One path for both callers:

- a guest, through its ``/dev/workbench/call/NAME`` node (:class:`CallService`, one per node and
  run): the request is ``{"payload": ..., "export"?: "..."}``, the response
  ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ..., "reason": ...}``;
- the host, through :meth:`Sandbox.run_module` (:func:`run_module`).

What a call obeys (design.md §3):

- the caller's ``module:call`` grants and denies decide whether it may call at all;
- the callee's manifest capabilities are attenuated by the caller's policy
  (:meth:`Policy.attenuate`): more than the caller holds is an ``EscalationError``, recorded;
- its limits are at most the caller's: memory at most the caller's cap, wall time at most what
  is left of the caller's deadline (the caller waits, so the callee's time is the caller's),
  fuel at most the caller's remaining fuel (charged back to the caller afterwards);
- data moves only as copies (JSON in, JSON out), capped by the device;
- a chain is at most :data:`MAX_CALL_DEPTH` modules deep and never calls a module already in it;
- a callee's trap or failure is an error response: its caller goes on;
- every call and its outcome is an event (``module``/``call``) with the caller chain, and the
  caller's :class:`RunResult` lists its calls as a tree (:class:`CallRecord`).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from ..errors import EscalationError, ManifestError, ModuleError, SandboxError
from ..events import Event
from ..policy import Policy, format_duration, format_size
from ..runtime.call_record import CallRecord
from ..runtime.context import ActiveRuns
from ..runtime.device import error_response
from .catalog import Catalog, default_catalog
from .manifest import Manifest

__all__ = ["CallService", "run_module", "MAX_CALL_DEPTH", "CallFailed"]

#: modules in one chain at most (the outermost caller included)
MAX_CALL_DEPTH = 4


class CallFailed(Exception):
    """A call refused before the callee ran: the error word and the reason."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


def _child_policy(parent: Policy, manifest: Manifest, caps: list[str]) -> Policy:
    """The manifest's request plus the caller's remaining budgets, attenuated by the caller's policy."""
    try:
        return parent.attenuate(Policy.parse([*manifest.capabilities, *caps]))
    except EscalationError:
        raise
    except SandboxError as exc:
        raise CallFailed("invalid", f"{manifest.name}'s capabilities cannot be used: {exc}") from None


def _budget(limits: Any, deadline: float | None, fuel_left: int | None) -> list[str]:
    caps = []
    if limits.memory_bytes is not None:
        caps.append(f"memory:limit:{format_size(limits.memory_bytes)}")
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0.001:
            raise CallFailed("limit", "the caller's time limit is used up")
        caps.append(f"time:limit:{format_duration(round(left, 4))}")
    if fuel_left is not None:
        if fuel_left <= 0:
            raise CallFailed("limit", "the caller's fuel is used up")
        caps.append(f"fuel:limit:{fuel_left}")
    for name in ("cpu_seconds", "output_bytes"):
        value = getattr(limits, name)
        if value is not None:
            caps.append(f"cpu:limit:{format_duration(value)}" if name == "cpu_seconds"
                        else f"output:limit:{format_size(value)}")
    return caps


def _execute(manifest: Manifest, policy: Policy, payload: Any, *, root: Any, bus: Any, chain: tuple[str, ...],
             on_violation: Any, secrets: Any, active: Any) -> Any:
    """Run the callee in a fresh sandbox: the caller's event bus (so its audit log records the callee),
    its secrets (a callee's ``;secret=`` grant came from the caller's), its cancellation."""
    from ..runtime.device_plan import plan_device
    from ..runtime.sandbox import Sandbox  # lazily: a call needs it, importing the catalog does not

    sandbox = Sandbox(policy, root=root, on_violation=on_violation)
    if secrets is not None:
        sandbox.secrets = secrets
    sandbox.plan = dataclasses.replace(sandbox.plan, caller_chain=chain, secrets=secrets,
                                       device=plan_device(policy, None, secrets))
    sandbox.bus = bus
    if active is not None:
        sandbox._active = active  # the caller's cancel() stops its callees too (_Linked)
    source = manifest.source_text()
    if manifest.language == "python":
        inputs = payload if isinstance(payload, dict) else {"payload": payload}
        return sandbox.run(source, "python", name=manifest.name, inputs=inputs)
    stdin = json.dumps(payload).encode()
    return sandbox.run(source, manifest.language, name=manifest.name, stdin=stdin)


def _value(result: Any, manifest: Manifest) -> Any:
    if manifest.language == "python":
        return result.value
    text = result.stdout.strip()
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _outcome(result: Any) -> tuple[bool, str | None, str]:
    """Did the callee finish (exit 0)?  Its refusals are its own record, not its caller's failure."""
    if result.fault is not None and result.fault.trapped:  # a Python guest's own exception is its exit code
        return False, "trap", str(result.fault).splitlines()[0]
    kills = [v for v in result.violations if v.decision == "kill"]
    if kills:
        return False, "stopped", f"{kills[0].kind}: {kills[0].message}"
    if result.exit_code == 0:
        refused = len(result.violations)
        return True, None, "exited 0" + (f" ({refused} refusal{'s' if refused != 1 else ''})" if refused else "")
    tail = (result.stderr.strip().splitlines() or [""])[-1]
    return False, "failed", f"exit code {result.exit_code}" + (f": {tail}" if tail else "")


class _Linked(ActiveRuns):
    """A callee's runs, as its caller's sandbox sees them: in the caller's set (so ``cancel()`` reaches
    them), and each stopped at its next tick once its caller is stopped (however the two raced)."""

    def __init__(self, caller: ActiveRuns, caller_watch: Any) -> None:
        super().__init__()
        self.caller = caller
        self.caller_watch = caller_watch

    def add(self, watch: Any) -> None:
        own, caller = watch.check, self.caller_watch

        def check() -> bool:
            if caller.stop_kind is not None and watch.stop_kind is None:
                watch.stop(caller.stop_kind, f"its caller was stopped ({caller.stop_reason})")
            return bool(own())

        watch.check = check
        self.caller.add(watch)

    def discard(self, watch: Any) -> None:
        self.caller.discard(watch)

    def stop_all(self, kind: str, reason: str) -> int:
        return self.caller.stop_all(kind, reason)


class CallService:
    """The node ``/dev/workbench/call/NAME`` of one run: each request runs ``NAME`` once."""

    def __init__(self, run: Any, name: str, catalog: Catalog | None = None) -> None:
        self.run = run
        self.name = name
        self.catalog = catalog

    def handle(self, request: bytes) -> bytes:
        run, name = self.run, self.name
        caller = run.chain or (run.module_name,)
        chain = (*caller, name)
        started = time.monotonic()
        try:
            payload, export = self._decode(request)
            decision = run.policy.check_call(name, export)
            if not decision.allowed:
                raise CallFailed("denied", decision.reason)
            if name in caller:
                raise CallFailed("cycle", f"{' → '.join(chain)}: {name} is already in the chain; calls may not cycle")
            if len(chain) > MAX_CALL_DEPTH:
                raise CallFailed("depth", f"{' → '.join(chain)}: at most {MAX_CALL_DEPTH} modules in a chain")
            manifest = (self.catalog or default_catalog()).get(name)
            if export is not None and export not in manifest.exports:
                raise CallFailed("invalid", f"{name} has no export {export!r} (exports: {', '.join(manifest.exports)})")
            fuel_left = run.fuel_left()
            policy = _child_policy(run.policy, manifest, _budget(run.limits, run.watch.deadline, fuel_left))
        except EscalationError as exc:
            return self._refused(chain, "escalation", exc.message, started)
        except CallFailed as failed:
            return self._refused(chain, failed.error, failed.reason, started)
        except (ManifestError, ModuleError) as exc:
            return self._refused(chain, "invalid", str(exc), started)
        run.emit("module", "call", "allow", target=name, caller_chain=chain,
                 capability=str(decision.capability) if decision.capability else None,
                 reason=decision.reason, detail={"policy": policy.to_strings(), "request_bytes": len(request)})
        try:
            result = _execute(manifest, policy, payload, root=run.plan.root, bus=run.bus, chain=chain,
                              on_violation=str(run.plan.on_violation), secrets=run.plan.secrets,
                              active=_Linked(run.active, run.watch))
        except SandboxError as exc:  # the callee's source does not compile, ...
            return self._refused(chain, "invalid", str(exc).splitlines()[0], started)
        if fuel_left is not None and result.usage.fuel_used is not None:
            run.charge_fuel(result.usage.fuel_used)
        ok, error, reason = _outcome(result)
        wall = time.monotonic() - started
        run.calls.append(CallRecord(name, chain, ok, error, reason, wall, result.calls))
        run.emit("module", "return", "allow", target=name, caller_chain=chain, reason=reason,
                 detail={"ok": ok, "error": error, "callee_run_id": result.run_id, "wall_seconds": round(wall, 6),
                         "exit_code": result.exit_code, "fuel_used": result.usage.fuel_used})
        if not ok:
            return error_response(error or "failed", f"{name}: {reason}")
        try:
            return json.dumps({"ok": True, "module": name, "result": _value(result, manifest)}).encode()
        except (TypeError, ValueError) as exc:
            return error_response("invalid", f"{name}'s result is not JSON data: {exc}")

    def refuse(self, error: str, reason: str) -> bytes:
        """A request the device refused before this service saw it (a readlink token that is not
        base64: ``runtime/device_link.py``), recorded as this service records its own refusals."""
        run = self.run
        return self._refused((*(run.chain or (run.module_name,)), self.name), error, reason, time.monotonic())

    def _decode(self, request: bytes) -> tuple[Any, str | None]:
        try:
            message = json.loads(request.decode("utf-8"))
        except UnicodeDecodeError:
            raise CallFailed("invalid", "the request is not valid UTF-8") from None
        except ValueError as exc:
            raise CallFailed("invalid", f"the request is not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise CallFailed("invalid", 'the request must be a JSON object {"payload": ..., "export"?: "..."}')
        export = message.get("export")
        if export is not None and not isinstance(export, str):
            raise CallFailed("invalid", "export must be a string")
        return message.get("payload"), export

    def _refused(self, chain: tuple[str, ...], error: str, reason: str, started: float) -> bytes:
        self.run.emit("module", "call", "deny", target=self.name, caller_chain=chain, reason=reason,
                      detail={"error": error})
        self.run.calls.append(CallRecord(self.name, chain, False, error, reason, time.monotonic() - started))
        return error_response(error, reason)


def run_module(sandbox: Any, name: str, payload: Any = None, *, catalog: Catalog | None = None) -> Any:
    """Run catalog module ``name`` with ``payload`` under ``sandbox``'s rights (the sandbox is the caller).

    Raises :class:`EscalationError` (recorded) when the module asks for more than the sandbox
    grants, ModuleError/ManifestError for a module that cannot be used."""
    manifest = (catalog or default_catalog()).get(name)
    try:
        policy = _child_policy(sandbox.policy, manifest, _budget(sandbox.limits, None, None))
    except EscalationError as exc:
        sandbox.bus.publish(Event(run_id=uuid.uuid4().hex, category="module", action="call", decision="deny",
                                  target=name, reason=exc.message, caller_chain=(name,), module=name,
                                  detail={"error": "escalation"}))
        raise
    except CallFailed as failed:
        raise ModuleError(f"module {name}: {failed.reason}", hint="fix its manifest.toml") from None
    return _execute(manifest, policy, payload, root=sandbox.root, bus=sandbox.bus, chain=(name,),
                    on_violation=str(sandbox.on_violation), secrets=sandbox.secrets, active=sandbox._active)
