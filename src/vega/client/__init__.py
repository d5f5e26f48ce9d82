"""The user and CI side: edges (one outside thing each) and flows (one verb each)."""
