"""Population simulator: personas, choice models, pairing, and the shipped twin panel.

See ``docs/contracts-simulate.md`` for the contract and ``docs/simulation.md`` for the design.
"""

from .battery import (
    BATTERY_NAMES,
    DEFAULT_COUPLING,
    battery,
    make_battery_population,
)
from .choice import CHOICE_MODELS, choice_probability, sample_choices
from .comparisons import simulate_arrays, simulate_comparisons
from .diagnostics import pair_differences, population_bt_bias, population_diagnostics
from .pairing import PAIRINGS, group_by_prompt, pair_indices
from .population import POPULATION_KINDS, SCALE_CORRS, SCALE_DISTS, Population, make_population
from .twin_panel import TWIN_VARIANTS, TwinPanel, load_twin_panel

__all__ = [
    "Population",
    "make_population",
    "load_twin_panel",
    "TwinPanel",
    "simulate_comparisons",
    "simulate_arrays",
    "pair_indices",
    "group_by_prompt",
    "choice_probability",
    "sample_choices",
    "POPULATION_KINDS",
    "SCALE_DISTS",
    "SCALE_CORRS",
    "CHOICE_MODELS",
    "PAIRINGS",
    "TWIN_VARIANTS",
    "population_diagnostics",
    "population_bt_bias",
    "pair_differences",
    "battery",
    "make_battery_population",
    "BATTERY_NAMES",
    "DEFAULT_COUPLING",
]
