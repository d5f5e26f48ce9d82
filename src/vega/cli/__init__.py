"""Front ends: argv and environment in; text or JSON out; an exit code.

Spec: cli.md §1 (global behaviour), §18 (exit codes); agent.md §1 (entry points).
"""

__all__: list[str] = []
