"""workbench.runtime.interrupt: SIGINT reaches a spinning guest; handlers are restored after."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from workbench import Sandbox, probes
from workbench.runtime.interrupt import route_interrupts


def _send_sigint_after(delay: float) -> list[float]:
    sent: list[float] = []

    def fire() -> None:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(delay, fire).start()
    return sent


@pytest.mark.timing
def test_sigint_cancels_a_spinning_guest_at_once() -> None:
    sandbox = Sandbox(["time:limit:20s"])
    sandbox.run(probes.hello())  # compile caches warm
    before = (signal.getsignal(signal.SIGINT), signal.set_wakeup_fd(-1))
    signal.set_wakeup_fd(before[1])
    sent = _send_sigint_after(0.3)
    with route_interrupts(lambda signum: sandbox.cancel("interrupted") > 0) as route:
        result = sandbox.run(probes.infinite_loop())
    latency = time.monotonic() - sent[0]
    assert latency < 0.2, latency
    assert route.received == [signal.SIGINT] and route.handled == 1
    assert [(e.category, e.action, e.decision) for e in result.events if e.is_violation] == [("lifecycle", "cancel", "kill")]
    assert signal.getsignal(signal.SIGINT) is before[0]
    assert signal.set_wakeup_fd(-1) == before[1]
    signal.set_wakeup_fd(before[1])


def test_sigint_with_nothing_to_cancel_is_a_keyboard_interrupt() -> None:
    _send_sigint_after(0.1)
    with pytest.raises(KeyboardInterrupt):
        with route_interrupts(lambda signum: False):
            time.sleep(2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_off_the_main_thread_it_does_nothing() -> None:
    seen = []

    def worker() -> None:
        with route_interrupts(lambda signum: True) as route:
            seen.append(route.active)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [False]


def test_a_broken_callback_falls_back_to_keyboard_interrupt() -> None:
    def broken(signum: int) -> bool:
        raise RuntimeError("oops")

    _send_sigint_after(0.1)
    with pytest.raises(KeyboardInterrupt):
        with route_interrupts(broken):
            time.sleep(2)
