"""convmix: ACmix and nn.Conv2d's bias, explained on live tensors. Importable without Streamlit."""

from .acmix import ATTENTION_IMPLS, ACmix, Geometry, coordinate_grid
from .constraints import ConfigError, Problem

__all__ = ["ACmix", "ATTENTION_IMPLS", "ConfigError", "Geometry", "Problem", "coordinate_grid"]
