"""Every cache is bounded (workbench.caches): a process running many distinct modules stays flat."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from workbench import Sandbox
from workbench.caches import BOUNDS, BoundedCache, memoized, report
from workbench.runtime import CompileCache, guard_link, sandbox as sandbox_module

WASI = """(module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (drop (call $w (i32.const 1) (i32.const 0) (i32.const 0) (i32.const {n})))))"""


def test_a_bounded_cache_keeps_the_most_recently_used() -> None:
    cache: BoundedCache[int, str | None] = BoundedCache("guard plans", maxsize=3)
    for n in range(3):
        cache.put(n, str(n))
    assert cache.get(0) == "0"  # now the most recent
    cache.put(3, None)  # None is a value (a module the guard has nothing to wrap)
    assert len(cache) == 3 and 1 not in cache
    assert cache.get(3, "missing") is None and cache.get(1, "missing") == "missing"


def test_a_bounded_cache_holds_its_bound_under_threads() -> None:
    cache: BoundedCache[tuple[int, int], int] = BoundedCache("checked modules", maxsize=50)

    def fill(worker: int) -> None:
        for n in range(2000):
            cache.put((worker, n), n)
            cache.get((worker, n - 1))

    threads = [threading.Thread(target=fill, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 50


def test_every_cache_is_declared_with_its_bound_and_reported() -> None:
    bound = BOUNDS["compiled sources"]
    held_before, bound_before = report().get("compiled sources", (0, 0))

    @memoized("compiled sources")
    def square(n: int) -> int:
        return n * n

    for n in range(bound * 3):
        square(n)
    sizes = report()
    assert sizes["compiled sources"] == (held_before + bound, bound_before + bound)
    assert all(held <= limit for held, limit in sizes.values()), sizes


def test_functions_memoised_under_one_name_add_up_in_the_report() -> None:
    """A second function under a name must not hide the first: the process holds both."""
    held_before, bound_before = report().get("path shapes", (0, 0))

    @memoized("path shapes")
    def double(n: int) -> int:
        return 2 * n

    @memoized("path shapes")
    def triple(n: int) -> int:
        return 3 * n

    for n in range(5):
        double(n)
    for n in range(7):
        triple(n)
    assert report()["path shapes"] == (held_before + 12, bound_before + 2 * BOUNDS["path shapes"])


def test_many_distinct_modules_never_grow_the_per_module_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module-keyed caches (checks done, guard plans, prepared modules) keep their bound,
    here made small so a test can pass it: 40 distinct modules through caches of 10."""
    checked: BoundedCache[tuple[str, str], bool] = BoundedCache("checked modules", maxsize=10)
    plans: BoundedCache[object, object] = BoundedCache("guard plans", maxsize=10)
    monkeypatch.setattr(sandbox_module, "_checked_modules", checked)
    monkeypatch.setattr(guard_link, "_plans", plans)
    sandbox = Sandbox(cache=CompileCache(tmp_path / "cache"))
    for n in range(40):
        result = sandbox.run(WASI.format(n=64 + 4 * n), lang="wat")
        assert result.exit_code == 0, result
    assert len(checked) == 10 and len(plans) == 10
    assert len(sandbox._prepared) == BOUNDS["prepared per sandbox"]
