"""Hypothesis strategies for capabilities and policies (one place, as attrs keeps them).

The alphabets are small on purpose: with a handful of path segments, hosts
and module names, generated grants, denies and probes overlap often, so the
properties are exercised on interesting cases rather than on disjoint ones.

Generated policies never conflict (an env variable is either set or
inherited, always to one value; either every filesystem grant of a policy is
mapped with ``;host=/srv<static folder>`` or none is), so ``Policy.parse``
accepts everything drawn here.
"""

from __future__ import annotations

from hypothesis import strategies as st

from workbench.policy import Capability, Policy
from workbench.policy.hosts import parse_host_scope
from workbench.policy.paths import glob_matches, is_glob, static_part

SEGMENTS = ["a", "b", "docs", "data", "x.json", "y.txt"]
GLOB_TAILS = ["*", "*.json", "**/*.json", "**", "?", "[ab]", "*/x.json"]
HOSTS = ["localhost", "example.com", "a.example.com", "b.a.example.com", "other.org", "127.0.0.1", "[::1]"]
WILDCARDS = ["*.example.com", "*.a.example.com", "*"]
HOST_PATTERNS = HOSTS + WILDCARDS
PORTS = [None, 80, 443, 8080]
MODULES = ["parser", "fmt"]
EXPORTS = [None, "run", "parse"]
SET_NAMES = ["MODE", "LEVEL"]  # env:set, always NAME=name.lower()
INHERIT_NAMES = ["LANG", "HOME"]  # env:inherit
SIZE_UNITS = ["", "B", "KB", "kB", "KiB", "MB", "MiB", "GB", "GiB"]
DURATION_UNITS = ["", "ms", "s", "m", "min", "h"]

segments = st.sampled_from(SEGMENTS)
#: concrete absolute guest paths, ``/`` included
guest_paths = st.lists(segments, max_size=3).map(lambda parts: "/" + "/".join(parts))


def mapped_host(scope: str) -> str:
    """The host folder a generated mapped grant uses: a function of its static folder,
    so every grant rooted at one folder agrees (and attenuation derives the same)."""
    return "/srv" + static_part(scope).rstrip("/")


@st.composite
def fs_scopes(draw: st.DrawFn) -> str:
    """A canonical folder or glob scope."""
    base = draw(st.lists(segments, max_size=2))
    if draw(st.booleans()):
        base.append(draw(st.sampled_from(GLOB_TAILS)))
    return "/" + "/".join(base)


def messy(scope: str, draw: st.DrawFn) -> str:
    """The same guest path spelled sloppily (doubled and trailing slashes)."""
    if draw(st.booleans()):
        scope = scope.replace("/", "//", 1)
    if draw(st.booleans()) and scope != "/":
        scope += "/"
    return scope


def network_scope(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


@st.composite
def size_texts(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return f"{draw(st.integers(1, 10**4))}.5{draw(st.sampled_from(['KB', 'MB', 'GB', 'KiB', 'MiB']))}"
    return f"{draw(st.integers(1, 10**5))}{draw(st.sampled_from(SIZE_UNITS))}"


@st.composite
def duration_texts(draw: st.DrawFn, *, bare: bool = True) -> str:
    """A positive duration of at most a year (the most a limit may be); ``bare=False`` always
    writes a unit (``cpu:limit:2`` is ambiguous)."""
    number = draw(st.integers(1, 8759))
    fraction = draw(st.sampled_from(["", ".5", ".25", ".001"]))
    unit = draw(st.sampled_from(DURATION_UNITS if bare else DURATION_UNITS[1:]))
    return f"{number}{fraction}{unit}"


@st.composite
def fuel_texts(draw: st.DrawFn) -> str:
    number = draw(st.integers(1, 10**15))
    style = draw(st.sampled_from(["plain", "underscores", "exponent"]))
    if style == "underscores":
        return f"{number:_}"
    if style == "exponent":
        return f"{draw(st.integers(1, 99))}e{draw(st.integers(0, 12))}"
    return str(number)


@st.composite
def limit_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["memory", "cpu%", "cpus", "time", "fuel", "output", "stack"]))
    if kind == "cpu%":
        share = draw(st.integers(1, 1000)) / 10
        return f"cpu:limit:{share:g}%"
    if kind == "cpus":
        return f"cpu:limit:{draw(duration_texts(bare=False))}"
    if kind == "time":
        return f"time:limit:{draw(duration_texts())}"
    if kind == "fuel":
        return f"fuel:limit:{draw(fuel_texts())}"
    return f"{kind}:limit:{draw(size_texts())}"


@st.composite
def right_texts(draw: st.DrawFn, *, mapped: bool | None = None, deny: bool | None = None) -> str:
    """A non-limit capability (grant or deny), possibly spelled non-canonically.

    ``mapped``: filesystem grants carry ``;host=/srv<static>`` (True), never (False),
    or at random (None).
    """
    if deny is None:
        deny = draw(st.integers(0, 3)) == 0
    bang = "!" if deny else ""
    domain = draw(st.sampled_from(["filesystem", "filesystem", "network", "env", "module", "clock"]))
    if domain == "filesystem":
        scope = draw(fs_scopes())
        text = f"{bang}filesystem:{draw(st.sampled_from(['read', 'write']))}:{messy(scope, draw)}"
        with_host = draw(st.booleans()) if mapped is None else mapped
        if with_host and not deny:
            text += f";host={mapped_host(scope)}"
        return text
    if domain == "network":
        host = draw(st.one_of(st.sampled_from(HOSTS), st.sampled_from(WILDCARDS)))  # wildcards half the time
        if draw(st.booleans()) and not host.startswith("["):
            host = host.upper()
        scope = network_scope(host, draw(st.sampled_from(PORTS)))
        return f"{bang}network:{draw(st.sampled_from(['http', 'https']))}:{scope}"
    if domain == "env":
        if draw(st.booleans()):
            name = draw(st.sampled_from(SET_NAMES))
            return f"{bang}env:set:{name}={name.lower()}"
        return f"{bang}env:inherit:{draw(st.sampled_from(INHERIT_NAMES))}"
    if domain == "module":
        module, export = draw(st.sampled_from(MODULES)), draw(st.sampled_from(EXPORTS))
        return f"{bang}module:call:{module}" + (f".{export}" if export else "")
    return f"{bang}clock:precise"


def capability_texts(*, mapped: bool | None = None) -> st.SearchStrategy[str]:
    """Any valid capability text."""
    return st.one_of(right_texts(mapped=mapped), limit_texts())


capabilities = capability_texts().map(Capability.parse)


@st.composite
def policies(draw: st.DrawFn, *, mapped: bool | None = None, max_size: int = 8) -> Policy:
    """A valid policy; its filesystem grants are all mapped or all unmapped."""
    if mapped is None:
        mapped = draw(st.booleans())
    texts = draw(st.lists(capability_texts(mapped=mapped), max_size=max_size))
    return Policy.parse(texts)


def _narrow_filesystem(cap: Capability, mapped: bool, draw: st.DrawFn) -> str:
    scope = cap.scope or "/"
    action = draw(st.sampled_from(["read", cap.action]))
    if is_glob(scope):
        candidate = draw(guest_paths)
        if glob_matches(candidate, scope) and draw(st.booleans()):
            scope = candidate  # an exact path the parent's glob matches
    else:
        extra = draw(st.lists(segments, max_size=2))
        if draw(st.booleans()):
            extra.append(draw(st.sampled_from(GLOB_TAILS)))
        if extra:
            scope = scope.rstrip("/") + "/" + "/".join(extra)
    text = f"filesystem:{action}:{scope}"
    if mapped:
        text += f";host={mapped_host(scope)}"  # the same host folder the caller's mapping gives
    return text


def _narrow_network(cap: Capability, draw: st.DrawFn) -> str:
    host, port = parse_host_scope(cap.scope or "")
    if host == "*":
        host = draw(st.sampled_from(HOST_PATTERNS))
    elif host.startswith("*."):
        host = draw(st.sampled_from([host, "a" + host[1:], "*.a" + host[1:], "deep.a" + host[1:]]))
    if port is None:
        port = draw(st.sampled_from(PORTS))
    return f"network:{cap.action}:{network_scope(host, port)}"


@st.composite
def children_of(draw: st.DrawFn, parent: Policy, *, extras: bool = True) -> Policy:
    """A child policy for ``parent``: narrowed copies of some of its grants, its own
    denies and limits, and (with ``extras``) random capabilities that may well escalate."""
    # the child maps all of its folders or none (as a policy must); mapping only
    # makes sense (and is only generated) when the parent maps its folders too
    mapped = any(cap.param("host") for cap in parent.grants) and draw(st.booleans())
    texts: list[str] = []
    rights = [cap for cap in parent.grants if not cap.is_limit]
    for cap in draw(st.lists(st.sampled_from(rights), max_size=5)) if rights else []:
        if cap.domain == "filesystem":
            texts.append(_narrow_filesystem(cap, mapped, draw))
        elif cap.domain == "network":
            texts.append(_narrow_network(cap, draw))
        elif cap.domain == "module" and "." not in (cap.scope or "") and draw(st.booleans()):
            texts.append(f"{cap}.{draw(st.sampled_from(['run', 'parse']))}")
        else:
            texts.append(str(cap))
    texts += draw(st.lists(right_texts(deny=True), max_size=2))
    texts += draw(st.lists(limit_texts(), max_size=3))
    if extras:
        texts += draw(st.lists(right_texts(mapped=mapped, deny=False), max_size=2))
    return Policy.parse(texts)


#: things a guest might ask for, to probe policies with
path_probes = st.tuples(guest_paths, st.booleans(), st.booleans())  # path, write, directory
network_probes = st.tuples(st.sampled_from(["http", "https"]), st.sampled_from(HOSTS), st.sampled_from(PORTS))
call_probes = st.tuples(st.sampled_from(MODULES), st.sampled_from(EXPORTS))


@st.composite
def parents_around_a_seed(draw: st.DrawFn) -> tuple[Policy, Capability]:
    """A small policy of rights (grants and denies) and one of them, the seed to probe next to."""
    mapped = draw(st.booleans())
    seed = Capability.parse(draw(right_texts(mapped=mapped, deny=draw(st.booleans()))))
    others = draw(st.lists(right_texts(mapped=mapped), max_size=3))
    return Policy.parse([seed, *others]), seed


def neighbours_of(seed: Capability, *, mapped: bool) -> list[str]:
    """Every grant next to ``seed``: the same, narrower, wider, a sibling, an exact path its
    glob matches, the wildcard's apex, another port or scheme, another export.  A deny
    seed counts too (asking for, or next to, what the caller denies).  Right at these
    edges coverage must get right, so a property checks each of them, not a sample."""
    if seed.domain == "filesystem":
        scope = seed.scope or "/"
        static = static_part(scope)
        base = static.rstrip("/")
        up = "/" + "/".join(static.strip("/").split("/")[:-1])
        scopes = {scope, static, up, static + "x", f"{base}/x.json", f"{base}/a", f"{base}/a/x.json"}
        scopes |= {f"{base}/{tail}" for tail in GLOB_TAILS}
        texts = [f"filesystem:{action}:{s}" for s in sorted(scopes) for action in ("read", "write")]
        return [f"{text};host={mapped_host(text.split(':', 2)[2])}" if mapped else text for text in texts]
    if seed.domain == "network":
        host, port = parse_host_scope(seed.scope or "")
        hosts = {host, "*"}
        if host != "*":
            apex = host[2:] if host.startswith("*.") else host
            hosts.add(apex)
            if not apex.startswith("["):
                hosts |= {"*." + apex, "z." + apex}
        return [
            f"network:{scheme}:{network_scope(h, p)}"
            for scheme in ("http", "https")
            for h in sorted(hosts)
            for p in sorted({port, None, 443, 8080}, key=str)
        ]
    if seed.domain == "module":
        module = (seed.scope or "").partition(".")[0]
        return [f"module:call:{s}" for s in sorted({module, f"{module}.run", f"{module}.zzz", f"{module}2", seed.scope or module})]
    if seed.domain == "env":
        return [f"env:set:{n}={n.lower()}" for n in SET_NAMES] + [f"env:inherit:{n}" for n in INHERIT_NAMES]
    return ["clock:precise"]


def probes_for(policy: Policy) -> tuple[list[tuple[str, bool, bool]], list[tuple[str, str, int | None]], list[tuple[str, str | None]]]:
    """Probes aimed at a policy's own grants: their folders and what lies just inside
    them, the hosts their patterns name (and the apex), the calls they name."""
    names: set[str] = set()
    for grant in policy.filesystem_grants():
        base = grant.guest_path.rstrip("/")
        names |= {grant.guest_path} | {f"{base}/{tail}" for tail in ["a", "x.json", "a/x.json", "a/b", "b/y.txt"]}
    path_list = [(name, write, directory) for name in sorted(names) for write in (False, True) for directory in (False, True)]
    host_list: list[tuple[str, str, int | None]] = []
    for cap in policy.grants:
        if cap.domain != "network":
            continue
        host, port = parse_host_scope(cap.scope or "")
        if host == "*":
            concrete = ["anything.net", "example.com"]
        elif host.startswith("*."):
            concrete = ["z" + host[1:], host[2:], "z.z" + host[1:]]
        else:
            concrete = [host]
        for name in concrete:
            for scheme in ("http", "https"):
                host_list += [(scheme, name, p) for p in {port, None, 80, 443, 8080}]
    call_list: list[tuple[str, str | None]] = []
    for cap in policy.grants:
        if cap.domain == "module":
            module, _, export = (cap.scope or "").partition(".")
            call_list += [(module, None), (module, export or "run"), (module, "zzz"), (module + "2", None)]
    return path_list, host_list, call_list



# -- filesystem trees, policies and guest moves for the guard's property test ---------------------------
#: the host tree: folders and files (each file holds a unique token); "outside" lies next to the root
FS_DIRS = ["a", "a/c", "a/c/private", "b", "b/private"]
FS_FILES = ["top.txt", "a/f1.txt", "a/c/f2.txt", "a/c/t.key", "a/c/private/p.txt", "b/f3.txt", "b/s.key",
            "b/private/p2.txt"]
FS_NODES = ["", *FS_DIRS, *FS_FILES]
#: what a grant or a carve-out may name (folders and files of the tree)
FS_GRANT_SCOPES = ["/", "/a", "/a/c", "/b", "/top.txt", "/a/f1.txt", "/b/f3.txt", "/a/c/f2.txt"]
FS_DENY_SCOPES = ["/a/c/private", "/b/private", "/a/c", "/b/f3.txt", "/a/f1.txt", "/**/*.key"]
#: where links are planted (a granted file may have been turned into a folder first)
_LINK_DIRS = ["", "a", "a/c", "b", "top.txt", "a/f1.txt", "b/f3.txt"]
_LINK_TEXTS = ["private", "private/p.txt", "../private", "../c/private", "c/private", "..", "../..", "../b",
               "../a/c/private", "../../outside", "../../../outside", "t.key", "../s.key", "f2.txt", "p.txt",
               "/a", "a/c/private"]
_TAILS = ["p.txt", "p2.txt", "private/p.txt", "private/p2.txt", "c/private/p.txt", "f1.txt", "f2.txt", "f3.txt",
          "t.key", "s.key", "c/t.key", "b/s.key", "a/c/private/p.txt", "outside/o.txt", "../outside/o.txt", "top.txt"]
_RENAMED = ["/a/c2", "/b2", "/a/moved", "/b/p3", "/a/c/p4", "/top2"]


def _sweep_paths() -> list[str]:
    """Every path the guest tries at the end: plain, through each link with and without '..', renamed."""
    found = ["/" + n for n in FS_NODES if n]
    for folder in _LINK_DIRS:
        for index in range(4):
            for kind in ("l", "g"):
                link = f"/{folder}/{kind}{index}" if folder else f"/{kind}{index}"
                found += [link] + [f"{link}/{tail}" for tail in _TAILS] + [f"{link}/../{tail}" for tail in _TAILS]
    for renamed in _RENAMED:
        found += [renamed] + [f"{renamed}/{tail}" for tail in _TAILS]
    return sorted(set(found))


FS_SWEEP = _sweep_paths()


@st.composite
def fs_policies(draw: st.DrawFn) -> list[str]:
    """1-3 grants (folders or single files, read or write) and 0-3 carve-outs (read or write denies)."""
    grants = draw(st.lists(st.tuples(st.sampled_from(["read", "write"]), st.sampled_from(FS_GRANT_SCOPES)),
                           min_size=1, max_size=3, unique_by=lambda g: g[1]))
    denies = draw(st.lists(st.tuples(st.sampled_from(["read", "write"]), st.sampled_from(FS_DENY_SCOPES)),
                           max_size=3, unique_by=lambda d: d[1]))
    return [f"filesystem:{a}:{s}" for a, s in grants] + [f"!filesystem:{a}:{s}" for a, s in denies]


@st.composite
def fs_symlinks(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Host-planted symlinks (link path, link text): into the tree, into carve-outs, out of the root."""
    links = []
    for index in range(draw(st.integers(0, 4))):
        folder = draw(st.sampled_from([d for d in _LINK_DIRS if d in FS_DIRS or d == ""]))
        links.append((f"{folder}/l{index}" if folder else f"l{index}", draw(st.sampled_from(_LINK_TEXTS))))
    return links


_existing = st.sampled_from(["/" + n for n in FS_NODES if n])
#: the guest's moves before it sweeps: plant links, turn files into folders, rename, link
fs_moves = st.one_of(
    st.tuples(st.just("symlink"), st.sampled_from(_LINK_TEXTS),
              st.builds(lambda d, i: f"/{d}/g{i}" if d else f"/g{i}", st.sampled_from(_LINK_DIRS), st.integers(0, 3))),
    st.tuples(st.just("filedir"), st.sampled_from(["/top.txt", "/a/f1.txt", "/b/f3.txt", "/a/c/f2.txt"])),
    st.tuples(st.just("rename"), _existing, st.sampled_from(_RENAMED)),
    st.tuples(st.just("rename"), st.sampled_from(_RENAMED), _existing),
    st.tuples(st.just("link"), _existing, st.sampled_from(["/a/h", "/b/h", "/h", "/a/c/h"])),
    st.tuples(st.sampled_from(["unlink", "rmdir", "mkdir"]), st.sampled_from(FS_SWEEP[:60])),
)

# -- hostile input: what an attacker, a fuzzer or a careless paste hands the parser ------------

#: characters that look like nothing, like something else, or are not text at all
ODD_CHARACTERS = [
    "\u2028", "\u2029", "\u0085", "\u00a0", "\u3000", "\u200b", "\u200d", "\u202e", "\ufeff", "\u180e",
    "\udcff", "\ud800", "\x00", "\t", "\n", "\r", "\x0b", "\x0c", "\x1b", "\x7f", " ", ";", ":", "=", "!",
    "²", "١", "１", "\u212a", "İ", "ß", "é", "~", "/", ".", "*", "[", "]", "%", "_", ",", "\\",
]
#: numbers as people, programs and attackers write them
ODD_NUMBERS = [
    "inf", "-inf", "Infinity", "nan", "NaN", "1e309", "-1e309", "1e-309", "-0", "0", "0.0", "+1", "-1",
    "0x10", "0X1F", "0b1", "0o7", "1_000", "1__0", "_1", "1_", "1e", "1e-5", "1E+3", ".5", "5.", "1.2.3",
    "٣", "１", "²", "9" * 5000, "1" + "0" * 4400, "0." + "0" * 400 + "1", "1" + "0" * 30, "1" + "0" * 29,
    "1e400", "1e4000", "1e99999", "18446744073709551615", "18446744073709551616", "1152921504606846976",
    "1152921504606846977", "31536000", "31536001", "8760", "8761", "525600", "65535", "65536",
]
UNIT_TEXTS = [
    *SIZE_UNITS, *DURATION_UNITS, "%", "TB", "TiB", "mb", "MIB", "Mb", "KIB", "xb", "s ", " s", " MB",
    "\u2028", "\u00a0MB", "ms\u200b", "%%", "e3", "1", "µs", "ns", "d", "y",
]
LIMIT_DOMAINS = ["memory", "cpu", "time", "fuel", "output", "stack"]
DOMAIN_WORDS = ["filesystem", "network", "env", "memory", "cpu", "time", "fuel", "output", "stack", "module",
                "clock", "Filesystem", "filesytem", "", "x", "limit", "read"]
ACTION_WORDS = ["read", "write", "http", "https", "set", "inherit", "limit", "call", "precise", "", "READ", "lim"]


def lenient(data: bytes, how: str) -> str:
    """Bytes as text the way a careless reader gets them: invalid UTF-8 kept as lone
    surrogates (``surrogateescape``, what ``sys.argv`` and ``os.fsdecode`` do), or as
    U+FFFD, or byte for byte (latin-1)."""
    return data.decode("latin-1") if how == "latin-1" else data.decode("utf-8", how)


#: any text at all, including lone surrogates (which hypothesis leaves out by default) and every
#: odd character above
odd_text = st.text(alphabet=st.one_of(st.characters(exclude_categories=()), st.sampled_from(ODD_CHARACTERS)), max_size=40)


@st.composite
def number_texts(draw: st.DrawFn) -> str:
    """A number as text: odd spellings, huge and tiny integers and decimals, floats of every kind."""
    kind = draw(st.sampled_from(["odd", "int", "huge", "decimal", "float", "fraction"]))
    if kind == "odd":
        return draw(st.sampled_from(ODD_NUMBERS))
    if kind == "int":
        return str(draw(st.integers(-(2**70), 2**70)))
    if kind == "huge":
        return str(draw(st.integers(0, 10**400)))
    if kind == "decimal":
        return str(draw(st.decimals(allow_nan=True, allow_infinity=True)))
    if kind == "float":
        return repr(draw(st.floats(allow_nan=True, allow_infinity=True)))
    return f"{draw(st.integers(0, 10**40))}.{draw(st.integers(0, 10**40))}"


@st.composite
def mangled(draw: st.DrawFn, text: str) -> str:
    """``text`` with odd characters or numbers put in, or parts of it cut out."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        what = draw(st.sampled_from(["char", "number", "text", "cut"]))
        if what == "char":
            text = text[:at] + draw(st.sampled_from(ODD_CHARACTERS)) + text[at:]
        elif what == "number":
            text = text[:at] + draw(number_texts()) + text[at:]
        elif what == "text":
            text = text[:at] + draw(odd_text) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 8)):]
    return text


@st.composite
def numeric_field_texts(draw: st.DrawFn) -> str:
    """A random number in every numeric field the grammar has: each limit, a port, an export."""
    number = draw(number_texts())
    field = draw(st.sampled_from(["limit", "limit", "port", "percent"]))
    if field == "port":
        return f"network:{draw(st.sampled_from(['http', 'https']))}:{draw(st.sampled_from(HOSTS[:4]))}:{number}"
    if field == "percent":
        return f"cpu:limit:{number}%"
    space = draw(st.sampled_from(["", "", " "]))
    return f"{draw(st.sampled_from(LIMIT_DOMAINS))}:limit:{number}{space}{draw(st.sampled_from(UNIT_TEXTS))}"


@st.composite
def assembled_texts(draw: st.DrawFn) -> str:
    """``[!]domain:action:scope;param=value``, each piece drawn from valid words and junk."""
    bang = draw(st.sampled_from(["", "", "!", "!!", " !"]))
    head = f"{draw(st.sampled_from(DOMAIN_WORDS))}:{draw(st.sampled_from(ACTION_WORDS))}"
    scope = draw(st.one_of(odd_text, number_texts(), fs_scopes().flatmap(mangled), st.just("")))
    text = f"{bang}{head}" + (f":{scope}" if draw(st.booleans()) else "")
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["host", "host", "Host", "x", ""]))
        value = draw(st.one_of(odd_text, st.sampled_from(["/srv/a", "~", "~/a", "~x", "rel", "./a", "", "/a;b"])))
        text += f";{name}={value}"
    return text


def hostile_capability_texts() -> st.SearchStrategy[str]:
    """Text a capability parser must survive: random bytes decoded leniently, random numbers
    in every field, valid capabilities with odd characters put in, and assembled junk."""
    return st.one_of(
        st.tuples(st.binary(max_size=60), st.sampled_from(["surrogateescape", "replace", "latin-1"])).map(
            lambda pair: lenient(*pair)
        ),
        numeric_field_texts(),
        capability_texts().flatmap(mangled),
        assembled_texts(),
        odd_text,
    )


# -- deny globs at every depth, and orders of access, for the guard's decision caches ------------------
_GLOB_PARTS = ["**", "*", "a", "b", "c", "private"]
_GLOB_LEAVES = ["*.key", ".env", "private", "*", "k.key"]


@st.composite
def deny_globs(draw: st.DrawFn) -> str:
    """A deny rule written anywhere above, at or below a grant: a glob at a random depth."""
    parts = draw(st.lists(st.sampled_from(_GLOB_PARTS), max_size=3))
    return "!filesystem:" + draw(st.sampled_from(["read", "write"])) + ":/" + "/".join(
        [*parts, draw(st.sampled_from(_GLOB_LEAVES))])


guard_paths = st.lists(st.sampled_from(["a", "b", "c", "private", "k.key", ".env", "x.txt"]), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts))
