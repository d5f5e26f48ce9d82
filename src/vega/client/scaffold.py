"""``vega init``'s workflow: render the SHA-pinned, least-privilege cache workflow and write it.

The rendered text is committed as ``examples/vega-cache.yml`` (a test checks that
``render_workflow(DEFAULT_ATTR)`` equals it byte for byte) and is linted with actionlint and
zizmor in the test command.

The attribute is checked against the provenance attribute rule of protocol.md §4.2 (the
original does not validate it): it is written into YAML inside a GitHub expression context, so
a quote, a newline or ``${{`` would otherwise change the workflow, and the server refuses an
attestation whose ``attr`` breaks that rule anyway (ADR 0017).

Spec: cli.md §2 (init); agent.md §2 (the action's inputs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vega.errors import ConfigError

__all__ = [
    "ACTION_PIN",
    "CHECKOUT_PIN",
    "DEFAULT_ATTR",
    "WORKFLOW_PATH",
    "Written",
    "render_workflow",
    "write_workflow",
]

DEFAULT_ATTR = "packages.x86_64-linux.default"
"""The attribute ``vega init`` builds unless ``--attr`` says otherwise (cli.md §2)."""

WORKFLOW_PATH = ".github/workflows/vega-cache.yml"
"""Where the workflow goes, relative to the repository root."""

CHECKOUT_PIN = "actions/checkout@9c091bb21b7c1c1d1991bb908d89e4e9dddfe3e0 # v7.0.0"
"""actions/checkout, pinned by full commit SHA (cli.md §2)."""

ACTION_PIN = "Ad-Astra-Computing/vega-agent/agent@fc8e1ddd9d5ff16f245603368b06b675cad06783 # v0.15.0"
"""The published CI agent action, pinned by full commit SHA (cli.md §2; ADR 0017 on bumping it)."""

_ATTR = re.compile(r"[A-Za-z0-9_+-]+(\.[A-Za-z0-9_+-]+)*(\^(\*|[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*))?")

_TEMPLATE = """\
# Vega: build this repository's flake in CI and publish it to the Vega cache.
#
# Each push to main builds the flake attribute below on a GitHub-hosted runner, uploads the
# closure to Vega and attests every output with this job's OIDC identity (no stored secret:
# the token is minted per job and only proves which repository and commit built what).
# Independent rebuilds that agree promote a build into the shared cache.
# Docs: https://docs.vega-cache.dev
#
# Keep every action pinned to a full commit SHA (as below) and let Dependabot's
# github-actions ecosystem propose updates.
name: Cache with Vega

on:
  push:
    branches: [main]
  workflow_dispatch:
  # pull_request is deliberately absent: a fork's pull request must never get id-token.

# Least privilege: nothing at the workflow level; the one job gets only what it needs.
permissions: {}

concurrency:
  group: vega-cache-${{ github.ref }}
  cancel-in-progress: false

jobs:
  cache:
    name: Build and cache with Vega
    runs-on: ubuntu-latest
    permissions:
      contents: read  # check out the repository
      id-token: write  # the job's OIDC identity, which attests the build (no stored secret)
    timeout-minutes: 60
    steps:
      - uses: @CHECKOUT@
        with:
          persist-credentials: false

      - name: Build and publish to Vega
        timeout-minutes: 45
        uses: @ACTION@
        with:
          installable: "${{ github.workspace }}#@ATTR@"
          control-plane: https://vega-cache.dev
          skip-upstream: "true"
          # Private or un-cached dependencies are built from source on the runner, which can
          # exhaust a hosted runner's time and disk; a cache that already has them helps. Its
          # key only lets this build substitute: it never widens what anyone else trusts.
          # extra-substituters: https://example.cachix.org
          # extra-trusted-public-keys: example.cachix.org-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

# Self-hosted builders: the image ghcr.io/ad-astra-computing/vega-builder heals its store volume
# by itself from v0.15.0 (its log says "seeding the baked store copy", then
# "store complete, direct handoff"); older images need a manual seed. See the builder README.
"""


def render_workflow(attr: str = DEFAULT_ATTR) -> str:
    """The workflow text for ``attr`` (cli.md §2).

    Raises:
        ConfigError: ``attr`` is not a flake attribute of the provenance form (protocol.md §4.2).
    """
    if not 1 <= len(attr) <= 255 or not _ATTR.fullmatch(attr):
        raise ConfigError(
            f"--attr {attr[:80]!r} is not a flake attribute path (letters, digits, _ + - between dots)",
            next_steps=[f"vega init --attr {DEFAULT_ATTR}"],
        )
    return (
        _TEMPLATE.replace("@CHECKOUT@", CHECKOUT_PIN).replace("@ACTION@", ACTION_PIN).replace("@ATTR@", attr)
    )


@dataclass(frozen=True)
class Written:
    """What ``write_workflow`` did."""

    path: Path
    """The absolute path written."""
    replaced: bool
    """Whether a file was overwritten (``--force``)."""


def write_workflow(root: Path, attr: str = DEFAULT_ATTR, *, force: bool = False) -> Written:
    """Write the workflow under ``root`` (parents created); never overwrite unless ``force``.

    Raises:
        ConfigError: the attribute is refused, the file exists without ``force``, the target is
            not a regular file, or it cannot be written.
    """
    text = render_workflow(attr)
    target = (root / WORKFLOW_PATH).absolute()
    exists = target.exists() or target.is_symlink()
    if exists and not force:
        raise ConfigError(
            f"{WORKFLOW_PATH} already exists",
            next_steps=[
                "vega init --force    overwrite it",
                "vega init --print    show the workflow instead",
            ],
        )
    if exists and (target.is_symlink() or not target.is_file()):
        raise ConfigError(f"{target} is not a regular file; refusing to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as e:
        raise ConfigError(f"cannot write {target}: {e.strerror or e}") from None
    return Written(target, replaced=exists)
