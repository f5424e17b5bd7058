"""Every cache the workbench keeps in a process, with its bound, in one place.

Why: a notebook runs the same cell again and again, and a batch runs thousands of distinct
modules in one worker.  Caches make the first fast; unbounded, they would make the second
grow without end.  So every cache is made here (:func:`memoized` for functions,
:class:`BoundedCache` for keyed values), each with the bound written below, and
:func:`report` shows what each holds, for tests and benchmarks
(``benchmarks/bench_caches.py`` runs 10,000 distinct modules and watches the process).

Least recently used entries go first.  Errors are never cached.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from typing import Callable, Generic, Hashable, ParamSpec, TypeVar

__all__ = ["BOUNDS", "BoundedCache", "memoized", "report"]

#: the most entries each cache keeps
BOUNDS: dict[str, int] = {
    # languages: source text to wasm bytes and to a runnable Program (a few MB each for C)
    "compiled sources": 32,
    "prepared programs": 32,
    "python programs": 32,
    # runtime: per module
    "checked modules": 4096,  # (sha256, entry) whose imports and entry point were checked: tiny
    "guard plans": 256,  # two small compiled helper modules each
    # runtime: per sandbox (the modules it ran last, ready to run again)
    "prepared per sandbox": 32,
    # policy: pure answers about capability text, hosts and inodes
    "path shapes": 4096,
    "host patterns": 4096,
    "inode hashes": 65536,
    "detail key names": 4096,  # audit: is a detail key a secret word?
}

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
P = ParamSpec("P")
R = TypeVar("R")

_caches: "weakref.WeakValueDictionary[int, BoundedCache[object, object]]" = weakref.WeakValueDictionary()
#: memoised functions by cache name: several functions may share a name (and its bound, each)
_functions: "dict[str, weakref.WeakSet[functools._lru_cache_wrapper[object]]]" = {}
_lock = threading.Lock()


class BoundedCache(Generic[K, V]):
    """A thread-safe mapping that keeps at most ``BOUNDS[name]`` (or ``maxsize``) entries."""

    def __init__(self, name: str, maxsize: int | None = None) -> None:
        self.name = name
        self.maxsize = BOUNDS[name] if maxsize is None else maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        with _lock:
            _caches[id(self)] = self  # type: ignore[assignment]

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def memoized(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``functools.lru_cache`` with the bound of ``BOUNDS[name]``, counted in :func:`report`."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        cached = functools.lru_cache(maxsize=BOUNDS[name])(function)
        with _lock:
            _functions.setdefault(name, weakref.WeakSet()).add(cached)
        return cached  # type: ignore[return-value]

    return wrap


def report() -> dict[str, tuple[int, int]]:
    """Every live cache by name: (entries now, bound).

    Caches of one name add up, whether they are one :class:`BoundedCache` per sandbox or several
    functions memoised under one name: each holds its own bound, so the process holds the sum.
    """
    sizes: dict[str, tuple[int, int]] = {}
    with _lock:
        caches = list(_caches.values())
        functions = [(name, list(members)) for name, members in _functions.items()]
    for cache in caches:
        held, bound = sizes.get(cache.name, (0, 0))
        sizes[cache.name] = (held + len(cache), bound + cache.maxsize)
    for name, cached_functions in functions:
        for cached in cached_functions:
            held, bound = sizes.get(name, (0, 0))
            sizes[name] = (held + cached.cache_info().currsize, bound + BOUNDS[name])
    return sizes
