"""gankit: train, evaluate and compare the classic GANs on real data."""
from .api import LoadedRun, build_config, config_from_dict, load_run, resume, run_config
from .config import RunConfig
from .data import DATASETS, load_data
from .errors import GankitError
from .models import MODELS
from .trainer import train

__version__ = "0.1.0"
__all__ = ["train", "resume", "load_run", "build_config", "config_from_dict", "run_config", "load_data",
           "LoadedRun", "RunConfig", "MODELS", "DATASETS", "GankitError", "__version__"]
