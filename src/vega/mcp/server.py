"""``vega mcp``: the four read-only tools served over stdio on the official MCP SDK (``MCPServer``).

The SDK (optional extra ``mcp``) is imported only here, and this module only by ``vega mcp``'s
``run``, so ``vega --help`` never loads it. The SDK owns the transport and JSON-RPC framing; stdout
carries protocol frames only, everything else (the start-up line, logs) goes to stderr.

Each tool is registered with the exact input schema of mcp.md §4 (``additionalProperties: false``),
an output schema (structured output), read-only annotations, and returns a ``CallToolResult``
whose text is the output as two-space-indented JSON (mcp.md §3.1) and whose structured content is
the same object; ``isError`` is true iff the output has a string ``error``. A failure the tool did
not expect becomes ``{"error": <sanitised message>}`` with ``isError``, never a protocol error.

Spec: mcp.md §1-§4; cli.md §14; issue 9.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vega import __version__
from vega.mcp.assess import MCP_BOUNDS, AssessBounds, assess_change
from vega.mcp.sanitize import untrusted_text
from vega.mcp.tools import ToolContext, tool_error, vega_reproduce, vega_risk, vega_verify

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp_types import CallToolResult

__all__ = [
    "OUTPUT_SCHEMAS",
    "PATHS_SCHEMA",
    "TARGET_SCHEMA",
    "TOOL_DESCRIPTIONS",
    "build_server",
    "render",
    "serve",
]

log = logging.getLogger(__name__)

TARGET_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "target": {
            "type": "string",
            "description": "a /nix/store path, a store-path hash, or <hash>.narinfo",
        }
    },
    "required": ["target"],
    "additionalProperties": False,
}
"""The input schema of the single-path tools (mcp.md §4)."""

PATHS_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "paths": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the store paths the change adds, already resolved; read-only",
        }
    },
    "required": ["paths"],
    "additionalProperties": False,
}
"""The input schema of ``vega_assess_change`` (mcp.md §4)."""

_VERDICT = {"type": "string", "enum": ["allow", "warn", "deny"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}

OUTPUT_SCHEMAS: dict[str, dict[str, object]] = {
    "vega_verify": {
        "type": "object",
        "properties": {
            "storePath": {"type": "string"},
            "storePathMatches": {"type": "boolean"},
            "narHash": {"type": "string"},
            "signature": {"type": "object"},
            "transparency": {"type": "object"},
            "narHashChecked": {"type": "boolean"},
            "narHashVerified": {"type": "boolean"},
            "verified": {"type": "boolean"},
        },
        "required": ["storePath", "signature", "transparency", "narHashVerified", "verified"],
    },
    "vega_risk": {
        "type": "object",
        "properties": {
            "verdict": _VERDICT,
            "tier": {"type": "string"},
            "reasonCodes": _STRINGS,
            "proofs": {"type": "object"},
            "nextActions": _STRINGS,
        },
        "required": ["verdict", "tier", "reasonCodes", "nextActions"],
    },
    "vega_reproduce": {
        "type": "object",
        "properties": {
            "target": {"type": "string"},
            "verdict": _VERDICT,
            "evidence": {"type": "string", "enum": ["origin-asserted"]},
            "reproduction": {"type": "object"},
            "proof": {"type": "object"},
            "reasonCodes": _STRINGS,
            "nextActions": _STRINGS,
        },
        "required": ["target", "verdict", "evidence", "reproduction", "reasonCodes", "nextActions"],
    },
    "vega_assess_change": {
        "type": "object",
        "properties": {
            "schemaVersion": {"type": "string", "const": "vega.verdict.v1"},
            "tool": {"type": "string"},
            "target": {"type": "object"},
            "verdict": _VERDICT,
            "reasonCodes": _STRINGS,
            "nextActions": _STRINGS,
            "evidence": {"type": "object"},
        },
        "required": ["schemaVersion", "tool", "target", "verdict", "reasonCodes", "nextActions", "evidence"],
    },
}
"""The output schemas advertised for structured output (checked by clients on non-error results)."""

TOOL_DESCRIPTIONS: dict[str, str] = {
    "vega_verify": (
        "Independently verify a Nix store path against the Vega cache: the cache signature under a key "
        "you already trust (nix.conf or --public-key, never one served by the cache), the signed log "
        "checkpoint and its consistency with the one seen before, an RFC 9162 inclusion proof of the "
        "promotion, no revocation, and the NAR bytes. Returns proof-backed facts. Installs nothing."
    ),
    "vega_risk": (
        "Allow/warn/deny gate for one Nix store path with proof-backed reason codes (for example "
        "TRANSPARENCY_LOG_INCLUDED, INCLUSION_PROOF_FAILED, LOG_FORK_DETECTED, REVOKED) and next "
        "actions. Deny only on a refutation; anything unchecked or unreachable is warn. Never a "
        "heuristic score."
    ),
    "vega_reproduce": (
        "Whether Vega independently reproduced a build, from the cache's reproduction status "
        "(reproducible, uncorroborated, mirrored, diverged) with the agreeing-builder count; the "
        "cache's word, capped by the same proofs as vega_risk. Never rebuilds; nix build --rebuild "
        "reproduces locally."
    ),
    "vega_assess_change": (
        "One allow/warn/deny for a dependency change, given the store paths it adds (for example the "
        "paths a lock-file diff adds), with a per-path breakdown using the same verdict as "
        "vega_risk. Bounded in paths and time; a change not assessed whole is never allow."
    ),
}
"""What each tool does (free text, no instructions; mcp.md §4)."""


def render(output: dict[str, object]) -> CallToolResult:
    """The tool result of ``output``: indented JSON text, the same object structured, and ``isError``."""
    from mcp_types import CallToolResult, TextContent

    text = json.dumps(output, indent=2, ensure_ascii=False)
    is_error = isinstance(output.get("error"), str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=output, is_error=is_error
    )


def _guarded(name: str, work: Callable[[], dict[str, object]]) -> CallToolResult:
    try:
        return render(work())
    except Exception as e:
        # mcp.md §3.1: a failure while a tool runs is its output, never a protocol error.
        log.warning("%s failed: %r", name, e)
        return render(tool_error(str(e) or "tool error", "TOOL_ERROR"))


def build_server(ctx: ToolContext, bounds: AssessBounds = MCP_BOUNDS) -> MCPServer[Any]:
    """The ``MCPServer`` with the four tools, in the order of mcp.md §4."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.tools.base import Tool
    from mcp_types import CallToolResult, ToolAnnotations

    def verify(target: object) -> CallToolResult:
        return _guarded("vega_verify", lambda: vega_verify(ctx, target))

    def risk(target: object) -> CallToolResult:
        return _guarded("vega_risk", lambda: vega_risk(ctx, target))

    def reproduce(target: object) -> CallToolResult:
        return _guarded("vega_reproduce", lambda: vega_reproduce(ctx, target))

    def assess(paths: object) -> CallToolResult:
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            return render(tool_error("missing required string-array argument 'paths'", "INVALID_ARGUMENTS"))
        return _guarded("vega_assess_change", lambda: assess_change(ctx, paths, bounds))

    titles = {
        "vega_verify": "Verify a store path",
        "vega_risk": "Gate a store path",
        "vega_reproduce": "Reproduction status",
        "vega_assess_change": "Gate a dependency change",
    }
    # NOTE: this module's annotations are strings (PEP 563) naming SDK types imported here, which
    # the SDK resolves against the module's globals; give it the real types.
    # The argument types are checked by the tools themselves (mcp.md §3.1 messages), not by pydantic.
    for fn, arg in ((verify, "target"), (risk, "target"), (reproduce, "target"), (assess, "paths")):
        fn.__annotations__ = {arg: object, "return": CallToolResult}
    tools: list[Tool] = []
    for name, fn, schema in (
        ("vega_verify", verify, TARGET_SCHEMA),
        ("vega_risk", risk, TARGET_SCHEMA),
        ("vega_reproduce", reproduce, TARGET_SCHEMA),
        ("vega_assess_change", assess, PATHS_SCHEMA),
    ):
        tool = Tool.from_function(
            fn,
            name=name,
            title=titles[name],
            description=TOOL_DESCRIPTIONS[name],
            annotations=ToolAnnotations(
                title=titles[name],
                read_only_hint=True,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=True,
            ),
        )
        tool.parameters = dict(schema)
        tool.fn_metadata.output_schema = OUTPUT_SCHEMAS[name]
        tools.append(tool)
    return MCPServer(
        "vega",
        version=__version__,
        instructions=None,
        tools=tools,
        log_level="WARNING",
    )


def serve(ctx: ToolContext, bounds: AssessBounds = MCP_BOUNDS, err: Any = None) -> int:
    """Serve over stdio until stdin ends; 0 (cli.md §14). Diagnostics go to ``err`` (stderr)."""
    err = err or sys.stderr
    server = build_server(ctx, bounds)
    err.write(f"vega mcp: serving over stdio against {untrusted_text(ctx.base_url, 512)}\n")
    err.flush()
    server.run("stdio")
    return 0
