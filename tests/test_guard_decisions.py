"""The guard's decision caches never change an answer, whatever the rules and the order of accesses.

The guard shares one decision between paths no rule can tell apart (every path of a mount
without fine rules; every plain child of a folder in a fine mount).  Property: for random grants
and deny globs written at every depth (above, at or below the grant), asking about random paths
in one order and in another gives, path by path, exactly the policy's own answer (the oracle:
``Policy.check_path`` asked afresh, with no cache).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import deny_globs, guard_paths
from workbench.policy import Policy
from workbench.runtime.fdtable import MountRoot
from workbench.runtime.guard_decisions import Decisions
from workbench.runtime.mounts import plan_mounts

GRANTS = ["filesystem:read:/a", "filesystem:write:/a", "filesystem:read:/a/b", "filesystem:write:/", "filesystem:read:/"]


@settings(max_examples=300, deadline=None)
@given(
    grant=st.sampled_from(GRANTS),
    denies=st.lists(deny_globs(), max_size=3),
    accesses=st.lists(st.tuples(guard_paths, st.booleans(), st.booleans()), min_size=1, max_size=30),
    seed=st.randoms(use_true_random=False),
)
def test_access_order_never_changes_a_decision(grant, denies, accesses, seed, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    policy = Policy.parse([grant, *denies])
    root = tmp_path_factory.mktemp("root")
    (root / "a" / "b").mkdir(parents=True)
    mounts = plan_mounts(policy, root)
    if not mounts:
        return  # a deny covering the whole grant: nothing is mounted
    roots = {m.guest_path: MountRoot(m.guest_path, m.host_path, None, m.fine, m.file_mount, m.writable) for m in mounts}

    def mount_of(path: str) -> MountRoot | None:
        holders = [g for g in roots if g == "/" or path == g or path.startswith(g + "/")]
        return roots[max(holders, key=len)] if holders else None

    def answers(order: list[tuple[str, bool, bool]]) -> dict[tuple[str, bool, bool], tuple[bool, str]]:
        decisions = Decisions(policy, frozenset(), ())
        found = {}
        for path, write, directory in order:
            mount = mount_of(path)
            if mount is None:
                continue
            verdict = decisions.decide(path, write, directory, mount)
            found[(path, write, directory)] = (verdict.allowed, verdict.reason)
        return found

    shuffled = list(accesses)
    seed.shuffle(shuffled)
    first, second = answers(accesses), answers(list(reversed(shuffled)))
    assert first == second
    for (path, write, directory), (allowed, reason) in first.items():
        oracle = policy.check_path(path, write, directory=directory)
        assert (allowed, reason) == (oracle.allowed, oracle.reason), (path, write, directory, grant, denies)
