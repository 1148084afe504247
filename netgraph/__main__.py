from netgraph.cli import entrypoint

entrypoint()
