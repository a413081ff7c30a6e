"""Typed experiment configuration built from hparams, validated before any side effect.

Import :class:`ExperimentConfig`, :class:`ConfigError`, :class:`Engine`,
:func:`build_components` (which runs :func:`check_mechanisms`) and
:func:`check_output_writable` from here.
"""

from speechfl.config.components import Components, build_components, check_against_partition
from speechfl.config.engine import Engine
from speechfl.config.errors import ConfigError
from speechfl.config.experiment import ExperimentConfig
from speechfl.config.mechanisms import Mechanisms, check_mechanisms
from speechfl.config.output import check_output_writable

__all__ = ["Components", "ConfigError", "Engine", "ExperimentConfig", "Mechanisms", "build_components",
           "check_against_partition", "check_mechanisms", "check_output_writable"]
