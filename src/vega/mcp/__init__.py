"""The read-only MCP server (``vega mcp``).

Spec: mcp.md; cli.md §14.
"""

__all__: list[str] = []
