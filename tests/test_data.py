import json

import numpy as np
import pandas as pd
import pytest

from signrm import PreferenceData


def _arrays(rng, n=20, d=3):
    return rng.standard_normal((n, d)), rng.standard_normal((n, d)), (rng.random(n) < 0.5) * 1.0


def test_from_arrays_basic(rng):
    xa, xb, y = _arrays(rng)
    data = PreferenceData.from_arrays(xa, xb, y, user=np.arange(20) % 4)
    assert data.n_samples == 20 and data.n_features == 3 and data.has_alternatives
    np.testing.assert_allclose(data.differences, xa - xb)
    np.testing.assert_array_equal(data.signs, 2 * y - 1)
    assert "n=20" in repr(data)


def test_constructor_is_private(rng):
    with pytest.raises(TypeError, match="from_arrays"):
        PreferenceData(y=np.ones(3))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda xa, xb, y: (xa[:5], xb, y), "same shape"),
        (lambda xa, xb, y: (xa, xb, y[:5]), "has 5 labels"),
        (
            lambda xa, xb, y: (np.where(np.arange(20)[:, None] == 7, np.nan, xa), xb, y),
            r"NaN or inf in row\(s\) 7",
        ),
        (
            lambda xa, xb, y: (xa, np.where(np.arange(20)[:, None] == 3, np.inf, xb), y),
            "xb: NaN or inf",
        ),
        (lambda xa, xb, y: (xa, xb, np.where(np.arange(20) == 2, 2.0, y)), r"row\(s\) 2"),
        (lambda xa, xb, y: (xa, xb, np.array(["a"] * 20)), "labels must be numbers"),
        (lambda xa, xb, y: (xa[:0], xb[:0], y[:0]), "no comparisons"),
    ],
)
def test_from_arrays_rejects_bad_input(rng, mutate, message):
    xa, xb, y = mutate(*_arrays(rng))
    with pytest.raises(ValueError, match=message):
        PreferenceData.from_arrays(xa, xb, y)


def test_ids_and_weights_validated(rng):
    xa, xb, y = _arrays(rng)
    with pytest.raises(ValueError, match="user: has 3 ids"):
        PreferenceData.from_arrays(xa, xb, y, user=[1, 2, 3])
    with pytest.raises(ValueError, match=r"weight: negative weight in row\(s\) 4"):
        PreferenceData.from_arrays(xa, xb, y, weight=np.where(np.arange(20) == 4, -1.0, 1.0))
    users = np.array([1.0] * 20)
    users[6] = np.nan
    with pytest.raises(ValueError, match=r"user: missing id in row\(s\) 6"):
        PreferenceData.from_arrays(xa, xb, y, user=users)
    with pytest.raises(ValueError, match="all weights are zero"):
        PreferenceData.from_arrays(xa, xb, y, weight=np.zeros(20))
    with pytest.raises(ValueError, match="every non-tie comparison has zero weight"):
        PreferenceData.from_arrays(xa, xb, np.r_[1.0, [0.5] * 19], weight=np.r_[0.0, [1.0] * 19])
    # all ties with weights: valid data (estimators refuse them at fit), like without weights
    ties = PreferenceData.from_arrays(xa, xb, np.full(20, 0.5), weight=np.ones(20))
    assert (ties.signs == 0).all()


def test_ties_allowed(rng):
    xa, xb, _ = _arrays(rng)
    y = np.array([0, 0.5, 1] * 6 + [1, 0])
    data = PreferenceData.from_arrays(xa, xb, y)
    assert (data.signs == 0).sum() == 6


def test_from_differences_and_alternative_requirement(rng):
    d = rng.standard_normal((10, 4))
    data = PreferenceData.from_differences(d, np.ones(10))
    assert not data.has_alternatives and data.xa is None
    with pytest.raises(ValueError, match="only hold differences"):
        data.require_alternatives("MLP head")


def test_from_items_one_hot_and_features(rng):
    a, b = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0])
    data = PreferenceData.from_items(a, b, [1, 0, 1, 0.5])
    assert data.n_features == 4
    np.testing.assert_array_equal(data.differences[0], [1, -1, 0, 0])
    feats = rng.standard_normal((4, 2))
    data = PreferenceData.from_items(a, b, [1, 0, 1, 1], item_features=feats)
    np.testing.assert_allclose(data.xa, feats[a])
    np.testing.assert_array_equal(data.item_b, b)
    with pytest.raises(ValueError, match=r"b_idx: item id outside \[0, 4\) in row\(s\) 1"):
        PreferenceData.from_items(a, np.array([1, 9, 3, 0]), [1, 0, 1, 1], item_features=feats)
    with pytest.raises(ValueError, match="differ in length"):
        PreferenceData.from_items(a, b[:3], [1, 0, 1, 1])
    with pytest.raises(ValueError, match="must be integers"):
        PreferenceData.from_items(np.array([0.5, 1, 2, 3]), b, [1, 0, 1, 1])


def test_split_keeps_groups_whole(rng):
    n = 400
    xa, xb, y = _arrays(rng, n=n)
    user = rng.integers(0, 40, n)
    data = PreferenceData.from_arrays(xa, xb, y, user=user, prompt=user % 7)
    for by in ("user", "prompt"):
        train, test = data.split(by=by, test_size=0.25, random_state=0)
        assert len(train) + len(test) == n
        assert not set(getattr(train, by)) & set(getattr(test, by))
    train, test = data.split(test_size=0.25, random_state=0)
    assert len(test) == 100
    # reproducible
    t2, _ = data.split(test_size=0.25, random_state=0)
    np.testing.assert_array_equal(train.y, t2.y)
    with pytest.raises(ValueError, match="needs user ids"):
        PreferenceData.from_arrays(xa, xb, y).split(by="user")
    with pytest.raises(ValueError, match="by must be"):
        data.split(by="annotator")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_write_read_roundtrip(tmp_path, rng, suffix):
    xa, xb, y = _arrays(rng)
    data = PreferenceData.from_arrays(xa, xb, y, user=np.arange(20) % 3, weight=np.ones(20))
    path = data.write(tmp_path / f"prefs{suffix}")
    back = PreferenceData.read(path)
    np.testing.assert_allclose(back.xa, xa)
    np.testing.assert_allclose(back.xb, xb)
    np.testing.assert_array_equal(back.y, y)
    np.testing.assert_array_equal(back.user, np.arange(20) % 3)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_from_frame_mapping_and_errors(rng):
    df = pd.DataFrame(
        {
            "price_a": [1.0, 2.0, 3.0],
            "price_b": [2.0, 1.0, 3.0],
            "choice": [1, 0, 1],
            "who": [1, 2, 3],
        }
    )
    data = PreferenceData.from_frame(
        df, features_a=["price_a"], features_b=["price_b"], label="choice", user="who"
    )
    np.testing.assert_allclose(data.differences[:, 0], [-1, 1, 0])
    with pytest.raises(ValueError, match=r"label: unknown column\(s\) \['y'\]"):
        PreferenceData.from_frame(df, features_a=["price_a"], features_b=["price_b"], label="y")
    with pytest.raises(ValueError, match="no feature columns"):
        PreferenceData.from_frame(df, label="choice")
    bad = df.assign(choice=[1, 3, 0])
    with pytest.raises(ValueError, match=r"must hold 0, 0.5 or 1; row\(s\) 1"):
        PreferenceData.from_frame(
            bad, features_a=["price_a"], features_b=["price_b"], label="choice"
        )
    bad = df.assign(price_a=[1.0, "x", 2.0])
    with pytest.raises(ValueError, match=r"column 'price_a' is not numeric \(row\(s\) 1\)"):
        PreferenceData.from_frame(
            bad, features_a=["price_a"], features_b=["price_b"], label="choice"
        )


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        PreferenceData.read(tmp_path / "missing.csv")
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"d_0": 1.0, "label": 1}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"x.jsonl:2: malformed JSON"):
        PreferenceData.read(p)
    txt = tmp_path / "x.txt"
    txt.write_text("")
    with pytest.raises(ValueError, match="cannot tell the format"):
        PreferenceData.read(txt)


def _item_frame():
    return pd.DataFrame(
        {
            "a_x": [1.0, 2.0, 3.0, 4.0],
            "b_x": [0.0, 1.0, 5.0, 2.0],
            "label": [1, 0, 1, 0],
            "item_a": [0, 1, 2, 3],
            "item_b": [1, 2, 3, 0],
        }
    )


def test_from_frame_validates_item_ids(tmp_path):
    df = _item_frame()
    data = PreferenceData.from_frame(df.assign(item_a=[0.0, 1.0, 2.0, 3.0]))
    assert data.item_a.dtype == np.int64
    np.testing.assert_array_equal(data.item_a, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"item_a: column 'item_a': missing item id in row\(s\) 2"):
        PreferenceData.from_frame(df.assign(item_a=[0, 1, np.nan, 3]))
    with pytest.raises(ValueError, match=r"item_b: column 'item_b' is not numeric \(row\(s\) 1\)"):
        PreferenceData.from_frame(df.assign(item_b=[1, "x", 3, 0]))
    with pytest.raises(ValueError, match=r"item ids must be integers; row\(s\) 3 hold e.g. 0.5"):
        PreferenceData.from_frame(df.assign(item_b=[1, 2, 3, 0.5]))
    # through read: a gap in a CSV column is NaN, a stray word makes the column text
    path = tmp_path / "items.csv"
    df.assign(item_a=[0, 1, np.nan, 3]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"items.csv: item_a: .*missing item id in row\(s\) 2"):
        PreferenceData.read(path)
    df.assign(item_a=[0, "x", 2, 3]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'item_a' is not numeric \(row\(s\) 1\)"):
        PreferenceData.read(path)


@pytest.mark.parametrize("role", ["weight", "margin"])
def test_from_frame_rejects_non_numeric_weight_and_margin(tmp_path, role):
    df = _item_frame().drop(columns=["item_a", "item_b"])
    with pytest.raises(ValueError, match=rf"{role}: column 'w' is not numeric \(row\(s\) 2\)"):
        PreferenceData.from_frame(df.assign(w=[1.0, 2.0, "x", 1.0]), **{role: "w"})
    path = tmp_path / "prefs.csv"
    df.assign(**{role: [1.0, "x", 2.0, "y"]}).to_csv(path, index=False)
    with pytest.raises(
        ValueError, match=rf"{role}: column '{role}' is not numeric \(row\(s\) 1, 3\)"
    ):
        PreferenceData.read(path)
    # numbers written as text are numbers
    data = PreferenceData.from_frame(df.assign(w=["1", "2", "0.5", "1"]), **{role: "w"})
    np.testing.assert_array_equal(getattr(data, role), [1.0, 2.0, 0.5, 1.0])


def test_from_frame_rejects_duplicate_feature_columns():
    df = _item_frame()
    with pytest.raises(ValueError, match=r"features_a: duplicate column name\(s\) \['a_x'\]"):
        PreferenceData.from_frame(df, features_a=["a_x", "a_x"], features_b=["b_x", "item_b"])
    with pytest.raises(ValueError, match=r"differences: duplicate column name\(s\) \['b_x'\]"):
        PreferenceData.from_frame(df, differences=["a_x", "b_x", "b_x"])
    twin = pd.concat([df, df[["a_x"]]], axis=1)  # two columns named a_x in the table
    with pytest.raises(ValueError, match=r"the table has several columns named \['a_x'\]"):
        PreferenceData.from_frame(twin, features_a=["a_x"], features_b=["b_x"])


def test_from_items_nan_ids_and_zero_features(rng):
    b = np.array([1, 2, 3, 0])
    with pytest.raises(ValueError, match=r"a_idx: missing item id in row\(s\) 1, 3"):
        PreferenceData.from_items(np.array([0.0, np.nan, 2.0, np.nan]), b, [1, 0, 1, 1])
    with pytest.raises(ValueError, match=r"a_idx: item ids must be integers; row\(s\) 0 hold"):
        PreferenceData.from_items(np.array([0.5, 1, 2, 3]), b, [1, 0, 1, 1])
    with pytest.raises(ValueError, match="d: has no feature columns"):
        PreferenceData.from_differences(np.zeros((5, 0)), np.ones(5))
    with pytest.raises(ValueError, match="xa: has no feature columns"):
        PreferenceData.from_arrays(np.zeros((5, 0)), np.zeros((5, 0)), np.ones(5))
    with pytest.raises(ValueError, match="item_features: has no feature columns"):
        PreferenceData.from_items([0, 1], [1, 0], [1, 0], item_features=np.zeros((2, 0)))
    with pytest.raises(ValueError, match="has no feature columns"):
        PreferenceData.from_frame(_item_frame(), differences=[])


def test_group_split_takes_the_share_closest_to_test_size(rng):
    # 10 groups of 30: the test side is 2 groups (20 %) for test_size=0.22, not the 3 groups
    # (30 %) of "add groups until the share is reached"
    n = 300
    xa, xb, y = _arrays(rng, n=n)
    data = PreferenceData.from_arrays(xa, xb, y, prompt=np.repeat(np.arange(10), 30))
    for seed in range(5):
        train, test = data.split(by="prompt", test_size=0.22, random_state=seed)
        assert (len(train), len(test)) == (240, 60)
        assert len(np.unique(test.prompt)) == 2
    # unequal groups: the realised share is the closest any prefix of the shuffled groups gets
    sizes = np.array([90, 5, 60, 5, 40, 100])
    user = np.repeat(np.arange(len(sizes)), sizes)
    xa, xb, y = _arrays(rng, n=len(user))
    data = PreferenceData.from_arrays(xa, xb, y, user=user)
    for seed in range(10):
        _, test = data.split(by="user", test_size=0.2, random_state=seed)
        order = np.random.default_rng(seed).permutation(len(sizes))
        cum = np.cumsum(sizes[order])[:-1]
        assert len(test) == cum[np.argmin(np.abs(cum - 0.2 * len(user)))]
    # two groups: one on each side whatever test_size
    data = PreferenceData.from_arrays(*_arrays(rng, n=50), user=np.r_[np.zeros(45), np.ones(5)])
    train, test = data.split(by="user", test_size=0.9, random_state=0)
    assert len(np.unique(train.user)) == len(np.unique(test.user)) == 1
