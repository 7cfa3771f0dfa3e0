"""Paired-comparison panels of the R package psychotools (GPL-2 | GPL-3), read without R.

Needs the Debian package ``r-cran-psychotools`` (the ``.rda`` files) and the pure-Python reader
``rdata`` (``pip install rdata``). Each row of a ``paircomp`` column is one subject's answers to
all pairs ``i:j`` of K objects: 1 = the first object ``i`` preferred, -1 = ``j`` preferred,
0 = tie (-> ``y = 0.5``), NA = not asked (skipped). Features are one-hot object ids (d = K), so
a linear reward is a worth per object.

Loaded: ``SoundQuality`` and ``GermanParties2009``. ``Topmodel2007`` (named in the issue) is in
the psycho-family package ``psychotree``, not in the Debian ``r-cran-psychotools`` data folder
(checked: ``/usr/lib/R/site-library/psychotools/data`` holds no such file), so it has no loader.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

from signrm.data import PreferenceData
from signrm.errors import ResourceError

__all__ = ["load_sound_quality", "load_german_parties", "PSYCHOTOOLS_DIRS"]

#: Where Debian installs the package's data.
PSYCHOTOOLS_DIRS = (
    Path("/usr/lib/R/site-library/psychotools/data"),
    Path("/usr/local/lib/R/site-library/psychotools/data"),
)


def _rda_file(name: str) -> Path:
    if importlib.util.find_spec("rdata") is None:
        raise ResourceError(
            "the pure-Python reader 'rdata' is not installed: run `pip install rdata`"
        )
    for d in PSYCHOTOOLS_DIRS:
        if (d / f"{name}.rda").is_file():
            return d / f"{name}.rda"
    raise ResourceError(
        f"{name}.rda not found: install the Debian package `apt-get install r-cran-psychotools`"
    )


def _read_paircomp(name: str, column: str) -> tuple[dict, np.ndarray, list[str]]:
    """(other columns, answers (S, P) float with NaN, object labels) of ``name``'s ``column``."""
    import rdata
    from rdata.conversion import DEFAULT_CLASS_MAP

    classes = dict(DEFAULT_CLASS_MAP)
    classes["paircomp"] = lambda obj, attrs: {"values": np.asarray(obj, float), "attrs": attrs}
    classes["data.frame"] = lambda obj, attrs: dict(obj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Unknown encoding. Assumed ASCII."
        frame = rdata.conversion.convert(rdata.parser.parse_file(_rda_file(name)), classes)[name]
    frame = {str(k): v for k, v in frame.items()}
    pc = frame.pop(column)
    return frame, pc["values"], [str(s) for s in pc["attrs"]["labels"]]


def _pairs(values: np.ndarray, n_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Objects (i, j) of psychotools' column order 1:2, 1:3, 2:3, 1:4, ... (0-based)."""
    i, j = zip(*[(a, b) for b in range(1, n_objects) for a in range(b)])
    if len(i) != values.shape[1]:
        raise ValueError(f"{values.shape[1]} pair columns for {n_objects} objects")
    return np.asarray(i), np.asarray(j)


def _to_data(users: np.ndarray, values: np.ndarray, labels: list[str]) -> PreferenceData:
    i, j = _pairs(values, len(labels))
    row, col = np.nonzero(~np.isnan(values))
    v = values[row, col]
    y = np.where(v > 0, 1.0, np.where(v < 0, 0.0, 0.5))
    return PreferenceData.from_items(
        i[col],
        j[col],
        y,
        n_items=len(labels),
        user=np.asarray(users)[row],
        prompt=row,
        feature_names=labels,
    )


def load_sound_quality() -> PreferenceData:
    """SoundQuality (Wickelmaier & Choisel 2006): 8 loudspeaker sound processing modes.

    40 listeners judged all 28 pairs of modes for 4 programme materials, each up to 3 times and
    in two sessions (783 rows). Size: **21,924 comparisons by 40 people**, d = 8. No ties or
    missing answers in this set. ``prompt`` = the judgment row (listener x material x repetition).
    """
    frame, values, labels = _read_paircomp("SoundQuality", "preference")
    return _to_data(np.asarray(frame["id"]).astype(str), values, labels)


def load_german_parties() -> PreferenceData:
    """GermanParties2009 (Rusch et al. 2013): 6 options (5 parties and "none"), 2009 election.

    192 respondents answered all 15 pairs (the unordered ``preference`` column). Size:
    **2,880 comparisons by 192 people**, d = 6. No ties; ``user`` = respondent row number.
    """
    _, values, labels = _read_paircomp("GermanParties2009", "preference")
    return _to_data(np.arange(values.shape[0]), values, labels)
