"""The read-only MCP server (``vega mcp``)."""
