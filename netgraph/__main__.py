from netgraph.cli import entrypoint

if __name__ == "__main__":  # spawned worker processes import this module too
    entrypoint()
