"""The user and CI side: edges (one outside thing each) and flows (one verb each).

Spec: cli.md (one flow per command); agent.md (the CI agent); house-style.md §4.2.
"""

__all__: list[str] = []
