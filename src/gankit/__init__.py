"""gankit: train, evaluate and compare the classic GANs on real data."""
from .api import LoadedRun, load_run
from .config import RunConfig, build_config
from .data import DATASETS, load_data
from .errors import GankitError
from .models import MODELS
from .trainer import train

__version__ = "0.1.0"
__all__ = ["train", "load_run", "build_config", "load_data", "LoadedRun", "RunConfig",
           "MODELS", "DATASETS", "GankitError", "__version__"]
