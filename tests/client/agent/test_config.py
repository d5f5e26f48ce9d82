"""``vega.yaml`` (agent.md §5): YAML 1.2 semantics, every key honoured or rejected by name."""

from __future__ import annotations

from typing import Any

import pytest

from vega.client.agent.config import (
    Build,
    BuildDecl,
    VegaConfig,
    flatten_flake_show,
    matches,
    parse_config,
    resolve_builds,
)
from vega.errors import ConfigError


def test_a_full_config() -> None:
    c = parse_config(
        """
builds:
  - packages.x86_64-linux.app
  - attr: packages.aarch64-linux.app
    systems: [aarch64-linux]
devShells: [default, ci.x]
include: ["checks.*.*"]
exclude: [checks.x86_64-linux.slow]
reuse-cache: true
secret-scan: deny
privacy: {continent: false, pseudonym: false}
reproduce: false
"""
    )
    assert c == VegaConfig(
        builds=(
            BuildDecl("packages.x86_64-linux.app"),
            BuildDecl("packages.aarch64-linux.app", ("aarch64-linux",)),
        ),
        dev_shells=("default", "ci.x"),
        include=("checks.*.*",),
        exclude=("checks.x86_64-linux.slow",),
        reuse_cache=True,
        secret_scan="deny",
        continent=False,
    )


def test_secret_scan_modes_and_defaults() -> None:
    assert parse_config("builds: [a]").secret_scan == "warn"
    assert parse_config("builds: [a]\nsecret-scan: true").secret_scan == "warn"
    assert parse_config("builds: [a]\nsecret-scan: false").secret_scan == "off"
    c = parse_config("builds: [a]")
    assert (c.reuse_cache, c.continent) == (False, True)


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "True1"])
def test_yaml_1_1_booleans_are_strings_and_so_rejected(word: str) -> None:
    """YAML 1.2 core schema: ``on`` is a string, so a boolean key rejects it."""
    with pytest.raises(ConfigError, match=r"vega\.yaml: reuse-cache must be a boolean"):
        parse_config(f"builds: [a]\nreuse-cache: {word}")


def test_yaml_1_2_strings_stay_strings_in_attrs() -> None:
    assert parse_config("builds: [on, no]").builds == (BuildDecl("on"), BuildDecl("no"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "vega.yaml must be a mapping"),
        ("# only a comment\n", "vega.yaml must be a mapping"),
        ("[a]", "vega.yaml must be a mapping"),
        ("builds: x", "vega.yaml `builds` must be a list"),
        ("builds: ['']", r"builds\[0\] attribute is empty"),
        ("builds: [a, 3]", r"builds\[1\] must be a mapping"),
        ("builds: [{attr: ''}]", r"builds\[0\].attr must be a non-empty string"),
        ("builds: [{systems: []}]", r"builds\[0\].attr must be a non-empty string"),
        ("builds: [{attr: a, systems: x}]", r"builds\[0\].systems must be an array of system strings"),
        ("builds: [{attr: a, systems: ['']}]", r"builds\[0\].systems must be an array"),
        ("devShells: ['a b']", r"devShells must be an array of shell names \(\[A-Za-z0-9._-\]\)"),
        ("include: ['a/b']", r"include must be an array of attribute matchers"),
        ("builds: [a]\nexclude: x", r"exclude must be an array of attribute matchers"),
        ("reuse-cache: true", "vega.yaml must declare at least one of `builds`, `devShells`, or `include`"),
        ("builds: [a]\nprivacy: [x]", "privacy must be a mapping"),
        ("builds: [a]\nreproduce: 1", "reproduce must be a boolean"),
        ("builds: [a]\nsecret-scan: warn", r"secret-scan must be a boolean \(or deny\)"),
        ("builds: [a]\nprivacy: {continent: 'no'}", "privacy.continent must be a boolean"),
        ("builds: [a]\nprivacy: {pseudonym: 0}", "privacy.pseudonym must be a boolean"),
        ("builds: [a]\nreproduce: true", "reproduce: true is not supported"),
        ("builds: [a]\nprivacy: {pseudonym: true}", "privacy.pseudonym: true is not supported"),
        ("builds: [a]\nsecret_scan: false", "unknown key 'secret_scan'"),
        ("builds: [{attr: a, system: [x]}]", r"unknown key builds\[0\].'system'"),
        ("builds: [a]\nprivacy: {country: false}", "unknown key privacy.'country'"),
        ("builds: [a]\nbuilds: [b]", "not valid YAML: .*duplicate key"),
        ("builds: [a", "not valid YAML"),
    ],
)
def test_invalid_configs_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        parse_config(text)
    assert "Try" not in e.value.message
    assert e.value.next_steps


def test_the_first_error_wins_in_spec_order() -> None:
    with pytest.raises(ConfigError, match="devShells must be"):
        parse_config("devShells: [' ']\nreproduce: 3")
    with pytest.raises(ConfigError, match="reproduce must be a boolean"):
        parse_config("builds: [a]\nreproduce: 3\nreuse-cache: 3")


@pytest.mark.parametrize(
    ("matcher", "attr", "ok"),
    [
        ("packages.x86_64-linux.*", "packages.x86_64-linux.hello", True),
        ("*.*", "a.b", True),
        ("*.*", "a.b.c", False),
        ("p*k*s.*.*", "packages.x86_64-linux.hello", True),
        ("*", "", True),
        ("a*", "b", False),
        ("*a*b*", "xxaxxbxx", True),
        ("*a*b", "xxaxxbxxc", False),
        ("a", "a", True),
        ("a.*", "a", False),
        ("**", "abc", True),
    ],
)
def test_matchers(matcher: str, attr: str, ok: bool) -> None:
    assert matches(matcher, attr) is ok


def test_a_pathological_matcher_is_linear() -> None:
    assert not matches("*a" * 50 + "b", "a" * 5000)


def test_flatten_flake_show() -> None:
    doc = {
        "packages": {"x86_64-linux": {"app": {"type": "derivation", "name": "app"}, "junk": 3}},
        "nixosConfigurations": {"host": {"type": "nixos-configuration"}},
        "type": {"not": "a leaf"},
        "lib": {},
    }
    assert flatten_flake_show(doc) == [
        "packages.x86_64-linux.app",
        "nixosConfigurations.host",
    ]
    assert flatten_flake_show({"type": "derivation"}) == []  # the root is never an attribute
    deep: dict[str, object] = {"type": "derivation"}
    for _ in range(40):
        deep = {"x": deep}
    assert flatten_flake_show(deep) == []  # depth cap 32
    wide = {"p": {f"a{i}": {"type": "derivation"} for i in range(20_010)}}
    assert len(flatten_flake_show(wide)) == 20_000


def test_resolve_builds_without_a_config() -> None:
    notes: list[str] = []
    assert resolve_builds(None, ".#packages.x.app", "/ws", lambda: "x", list, notes.append) == [
        Build(".#packages.x.app", "packages.x.app")
    ]
    assert resolve_builds(None, "github:o/r", "/ws", lambda: "x", list, notes.append) == [
        Build("github:o/r", "")
    ]


def test_resolve_builds_with_a_config() -> None:
    config = parse_config(
        """
builds: [a.b, {attr: only.arm, systems: [aarch64-linux]}, {attr: here, systems: [x86_64-linux]}]
devShells: [default]
include: ["checks.x86_64-linux.*"]
exclude: ["*.*.slow", "devShells.*.nothing"]
"""
    )
    notes: list[str] = []
    asked: list[str] = []

    def outputs() -> list[str]:
        asked.append("show")
        return ["checks.x86_64-linux.unit", "checks.x86_64-linux.slow", "a.b", "packages.x86_64-linux.app"]

    builds = resolve_builds(config, "ignored", "/ws//", lambda: "x86_64-linux", outputs, notes.append)
    assert builds == [
        Build("/ws#a.b", "a.b"),
        Build("/ws#here", "here"),
        Build("/ws#devShells.x86_64-linux.default", "devShells.x86_64-linux.default"),
        Build("/ws#checks.x86_64-linux.unit", "checks.x86_64-linux.unit"),
    ]
    assert asked == ["show"]
    assert notes == ["vega.yaml: skipping only.arm (systems: aarch64-linux; this is x86_64-linux)"]


def test_resolve_builds_asks_nix_only_when_needed() -> None:
    def never() -> Any:
        raise AssertionError("not needed")

    config = parse_config("builds: [a]")
    assert resolve_builds(config, ".#", "/ws", never, never, print) == [Build("/ws#a", "a")]
