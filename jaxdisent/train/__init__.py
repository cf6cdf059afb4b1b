"""Training engine: mesh + sharded step, TrainState, fit loop, Orbax checkpoints, logging."""

from jaxdisent.train.checkpoint import CheckpointError, Checkpointer
from jaxdisent.train.config import load_config
from jaxdisent.train.loop import FitResult, NonFiniteLossError, fit
from jaxdisent.train.parallel import AXIS, DataParallel, make_mesh, per_device_step
from jaxdisent.train.state import TrainState

__all__ = ["AXIS", "CheckpointError", "Checkpointer", "DataParallel", "FitResult",
           "NonFiniteLossError", "TrainState", "fit", "load_config", "make_mesh", "per_device_step"]
