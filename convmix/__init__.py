"""convmix: ACmix and nn.Conv2d's bias, explained on live tensors. Importable without Streamlit."""

from .acmix import ATTENTION_IMPLS, ACmix, Geometry, coordinate_grid
from .constraints import ConfigError, Problem
from .fast import fast_attention  # importing convmix.fast registers ATTENTION_IMPLS["fast"]

__all__ = [
    "ACmix", "ATTENTION_IMPLS", "ConfigError", "Geometry", "Problem", "coordinate_grid", "fast_attention",
]
