"""The CI agent (``vega-attest``) and the reproducer (``vega-reproduce``).

Modules: :mod:`.settings` (environment inputs), :mod:`.config` (``vega.yaml``),
:mod:`.flakeref` (sub-flake classification, locked installables, source mirrors),
:mod:`.secrets` (client-side secret scan), :mod:`.github` (workflow-command escaping),
:mod:`.oidc` (the OIDC token provider), :mod:`.watchdog` (stall watchdog),
:mod:`.failure` (failure classification), :mod:`.attest` and :mod:`.reproduce` (the flows).

Spec: agent.md §1-§11; changes-0.19.md.
"""

__all__: list[str] = []
