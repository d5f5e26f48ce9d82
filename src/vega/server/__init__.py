"""The reference control plane (``vega-server``); stands on ``vega.core`` alone."""
