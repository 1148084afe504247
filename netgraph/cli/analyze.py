"""``netgraph analyze`` (placeholder until the analysis core lands)."""
