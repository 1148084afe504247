"""Training: models, data, checkpoints and the (distributed) training engine.

- :mod:`.models` the model zoo (project models, torchvision, ``module:factory``);
- :mod:`.data` bundled and user datasets, loaders;
- :mod:`.checkpoint` safe checkpoint loading (``weights_only=True``) and saving;
- :mod:`.engine` the training loop with CoNNect and L1, AMP, resume;
- :mod:`.distributed` DDP set-up and tear-down.

Importing it loads neither the tracer nor Torch-Pruning: training reads weights
through :mod:`netgraph.parameters` and builds the CoNNect regularizer only when
it is asked for.
"""

from netgraph.training.engine import (
    TrainConfig,
    TrainResult,
    evaluate,
    seed_everything,
    train,
)

__all__ = ["TrainConfig", "TrainResult", "evaluate", "seed_everything", "train"]
