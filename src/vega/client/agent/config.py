"""``vega.yaml``: the agent's build declaration, parsed with YAML 1.2 core-schema semantics.

``yes``/``no``/``on``/``off`` are strings (ruamel.yaml's safe loader speaks YAML 1.2; PyYAML's
1.1 booleans would turn ``on`` into ``True``). An empty file is rejected, duplicate keys are
errors, and every error is fatal (never a silent fallback). Validation order and messages are
those of agent.md §5.1; this implementation also decides, per docs/adr/0016:

* unknown keys (root, ``builds[i]``, ``privacy``) are rejected, naming the key (a typo such as
  ``secret_scan`` must not silently keep the default);
* ``builds[i].systems`` is honoured: a build whose list does not name the current system is
  skipped, and said so;
* ``reproduce: true`` and ``privacy.pseudonym: true`` are rejected (nothing implements them;
  ``false`` is what happens anyway and is accepted);
* ``secret-scan`` also takes ``deny``: a finding fails the run before anything is uploaded.

Spec: agent.md §5.1-§5.3.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from vega.errors import ConfigError

__all__ = [
    "Build",
    "BuildDecl",
    "SecretScan",
    "VegaConfig",
    "flatten_flake_show",
    "matches",
    "parse_config",
    "resolve_builds",
]

_SHELL: Final = re.compile(r"^[a-zA-Z0-9._-]+$")
_MATCHER: Final = re.compile(r"^[a-zA-Z0-9._*-]+$")
_ROOT_KEYS: Final = frozenset(
    {"builds", "devShells", "include", "exclude", "reproduce", "reuse-cache", "secret-scan", "privacy"}
)
_BUILD_KEYS: Final = frozenset({"attr", "systems"})
_PRIVACY_KEYS: Final = frozenset({"continent", "pseudonym"})
_MAX_DEPTH: Final = 32
_MAX_ATTRS: Final = 20_000

SecretScan = Literal["warn", "off", "deny"]


class VegaConfigError(ConfigError):
    """``vega.yaml`` is malformed (the message is the spec's, prefixed with the file name)."""


def _fail(message: str) -> VegaConfigError:
    return VegaConfigError(
        f"vega.yaml: {message}" if not message.startswith("vega.yaml") else message,
        next_steps=["fix vega.yaml (agent.md §5 lists every key), or remove it to build argv[1]"],
    )


@dataclass(frozen=True, slots=True)
class BuildDecl:
    """One ``builds[]`` entry."""

    attr: str
    """The flake attribute."""
    systems: tuple[str, ...] = ()
    """Systems it is built on (empty: every system)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VegaConfig:
    """A validated ``vega.yaml``."""

    builds: tuple[BuildDecl, ...] = ()
    dev_shells: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    reuse_cache: bool = False
    secret_scan: SecretScan = "warn"  # noqa: S105 - a mode, not a secret
    continent: bool = True
    """``privacy.continent`` (false: ``noContinent`` is sent)."""


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _unknown(keys: Iterable[object], allowed: frozenset[str], where: str) -> None:
    for key in keys:
        if key not in allowed:
            raise _fail(f"unknown key {where}{str(key)[:80]!r} (allowed: {', '.join(sorted(allowed))})")


def _string_list(
    doc: dict[object, object], key: str, pattern: re.Pattern[str], message: str
) -> tuple[str, ...]:
    value = doc.get(key, [])
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value):
        raise _fail(message)
    return tuple(value)


def parse_config(text: str) -> VegaConfig:
    """Parse and validate ``vega.yaml`` text (agent.md §5.1 order; first error wins).

    Raises:
        VegaConfigError: a YAML error or a validation error, naming the key.
    """
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    try:
        doc = yaml.load(io.StringIO(text))
    except YAMLError as e:
        detail = " ".join(str(e).split("\n\nTo suppress")[0].split())
        raise _fail(f"not valid YAML: {detail[:300]}") from None
    if not isinstance(doc, dict):
        raise _fail("vega.yaml must be a mapping")
    _unknown(doc.keys(), _ROOT_KEYS, "")
    raw_builds = doc.get("builds", [])
    if raw_builds is None:
        raw_builds = []
    if not isinstance(raw_builds, list):
        raise _fail("vega.yaml `builds` must be a list")
    builds: list[BuildDecl] = []
    for i, entry in enumerate(raw_builds):
        if isinstance(entry, str):
            if not entry:
                raise _fail(f"builds[{i}] attribute is empty")
            builds.append(BuildDecl(entry))
            continue
        if not isinstance(entry, dict):
            raise _fail(f"builds[{i}] must be a mapping")
        _unknown(entry.keys(), _BUILD_KEYS, f"builds[{i}].")
        attr = entry.get("attr")
        if not isinstance(attr, str) or not attr:
            raise _fail(f"builds[{i}].attr must be a non-empty string")
        systems = entry.get("systems", [])
        if not isinstance(systems, list) or not all(isinstance(s, str) and s for s in systems):
            raise _fail(f"builds[{i}].systems must be an array of system strings")
        builds.append(BuildDecl(attr, tuple(systems)))
    shells = _string_list(
        doc, "devShells", _SHELL, "devShells must be an array of shell names ([A-Za-z0-9._-])"
    )
    include = _string_list(
        doc, "include", _MATCHER, "include must be an array of attribute matchers ([A-Za-z0-9._*-])"
    )
    exclude = _string_list(
        doc, "exclude", _MATCHER, "exclude must be an array of attribute matchers ([A-Za-z0-9._*-])"
    )
    if not builds and not shells and not include:
        raise _fail("vega.yaml must declare at least one of `builds`, `devShells`, or `include`")
    privacy = doc.get("privacy", {})
    if privacy is None:
        privacy = {}
    if not isinstance(privacy, dict):
        raise _fail("privacy must be a mapping")
    _unknown(privacy.keys(), _PRIVACY_KEYS, "privacy.")
    reproduce = doc.get("reproduce", False)
    if not _is_bool(reproduce):
        raise _fail("reproduce must be a boolean")
    reuse = doc.get("reuse-cache", False)
    if not _is_bool(reuse):
        raise _fail("reuse-cache must be a boolean")
    scan = doc.get("secret-scan", True)
    if not _is_bool(scan) and scan != "deny":
        raise _fail("secret-scan must be a boolean (or deny)")
    continent = privacy.get("continent", True)
    if not _is_bool(continent):
        raise _fail("privacy.continent must be a boolean")
    pseudonym = privacy.get("pseudonym", False)
    if not _is_bool(pseudonym):
        raise _fail("privacy.pseudonym must be a boolean")
    if reproduce:
        raise _fail(
            "reproduce: true is not supported: reproduction is dispatched by the control plane"
            " (docs/adr/0016); remove the key"
        )
    if pseudonym:
        raise _fail("privacy.pseudonym: true is not supported by this agent (docs/adr/0016); remove the key")
    return VegaConfig(
        builds=tuple(builds),
        dev_shells=shells,
        include=include,
        exclude=exclude,
        reuse_cache=bool(reuse),
        secret_scan="deny" if scan == "deny" else ("warn" if scan else "off"),
        continent=bool(continent),
    )


def _segment_matches(pattern: str, text: str) -> bool:
    """``*`` matches any run within one segment: a linear two-pointer scan (no backtracking blow-up)."""
    p = t = 0
    star = -1
    mark = 0
    while t < len(text):
        if p < len(pattern) and pattern[p] != "*" and pattern[p] == text[t]:
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star = p
            mark = t
            p += 1
        elif star != -1:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def matches(matcher: str, attr: str) -> bool:
    """Whether the dot-separated ``matcher`` matches ``attr`` segment by segment (agent.md §5.3)."""
    ms = matcher.split(".")
    as_ = attr.split(".")
    return len(ms) == len(as_) and all(_segment_matches(m, a) for m, a in zip(ms, as_, strict=True))


def flatten_flake_show(doc: object) -> list[str]:
    """The attribute paths of ``nix flake show --json`` leaves (a string ``type``), depth-first."""
    out: list[str] = []
    stack: list[tuple[object, tuple[str, ...]]] = [(doc, ())]
    while stack and len(out) < _MAX_ATTRS:
        node, path = stack.pop()
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("type"), str):
            if path:
                out.append(".".join(path))
            continue
        if len(path) >= _MAX_DEPTH:
            continue
        for key in reversed(list(node)):
            stack.append((node[key], (*path, str(key))))
    return out


@dataclass(frozen=True, slots=True)
class Build:
    """One thing to build and attest."""

    installable: str
    """What ``nix build`` gets."""
    attr: str
    """Provenance attribute (empty: none)."""


def resolve_builds(
    config: VegaConfig | None,
    argv_installable: str,
    flake_dir: str,
    system: Callable[[], str],
    outputs: Callable[[], Sequence[str]],
    note: Callable[[str], None],
) -> list[Build]:
    """The builds, in order (agent.md §5.2), with ``builds[].systems`` honoured.

    Args:
        config: the parsed ``vega.yaml`` (``None``: build ``argv_installable``).
        argv_installable: argv[1].
        flake_dir: the workspace.
        system: the current system (asked only when needed).
        outputs: the flattened flake outputs (asked only with ``include``).
        note: where a skipped ``builds[]`` entry is reported.
    """
    if config is None:
        _, _, attr = argv_installable.partition("#")
        return [Build(argv_installable, attr)]
    base = flake_dir.rstrip("/") or "/"
    current = system() if config.dev_shells or any(b.systems for b in config.builds) else ""
    attrs: list[str] = []
    for decl in config.builds:
        if decl.systems and current not in decl.systems:
            note(f"vega.yaml: skipping {decl.attr} (systems: {', '.join(decl.systems)}; this is {current})")
            continue
        attrs.append(decl.attr)
    attrs.extend(f"devShells.{current}.{name}" for name in config.dev_shells)
    if config.include:
        attrs.extend(a for a in outputs() if any(matches(m, a) for m in config.include))
    seen: dict[str, None] = {}
    for attr in attrs:
        if not any(matches(m, attr) for m in config.exclude):
            seen.setdefault(attr, None)
    return [Build(f"{base}#{attr}", attr) for attr in seen]
