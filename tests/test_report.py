"""training/report.py: the ECE against hand-worked values, every plot writes a PNG, the model card's Markdown."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from training.report import (
    ModelCard,
    coverage_plot,
    expected_calibration_error,
    importance_plot,
    model_card,
    reliability_plot,
    shap_summary_plot,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000


# ------------------------------------------------------------------------------------------------------------------
# expected calibration error


def test_ece_perfectly_calibrated_is_small() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.0, 1.0, 20_000)
    y = (rng.uniform(0.0, 1.0, p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.03


def test_ece_constant_half_on_ten_percent_positives() -> None:
    y = np.zeros(1000, dtype=int)
    y[:100] = 1
    assert expected_calibration_error(y, np.full(1000, 0.5)) == pytest.approx(0.4)


def test_ece_hand_computed() -> None:
    # bin [0, .1): 1 row, |0 - .05| ; bin [.1, .2): 2 rows, |0.5 - .15| ; bin [.9, 1]: 1 row, |1 - .95|
    y = np.array([0, 1, 0, 1])
    p = np.array([0.05, 0.15, 0.15, 0.95])
    expected = (1 * 0.05 + 2 * 0.35 + 1 * 0.05) / 4
    assert expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.2)


def test_ece_bin_edges_and_bin_count() -> None:
    # 1.0 falls in the last bin, 0.5 opens the upper bin; with one bin the ECE is |base rate - mean prob|
    y = np.array([1, 0, 1])
    p = np.array([1.0, 0.5, 0.0])
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx((abs(0.5 - 0.75) * 2 + 1.0) / 3)
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(2 / 3 - 0.5))


@pytest.mark.parametrize(
    ("y", "p"),
    [([0, 1], [0.2]), ([0, 2], [0.2, 0.3]), ([0, 1], [0.2, 1.2]), ([0, 1], [0.2, np.nan]), ([], [])],
)
def test_ece_rejects_bad_input(y: list[float], p: list[float]) -> None:
    with pytest.raises(ValueError):
        expected_calibration_error(np.array(y), np.array(p))


# ------------------------------------------------------------------------------------------------------------------
# plots


def test_reliability_plot_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(1, 6, 500)
    y = (rng.uniform(size=p.size) < p).astype(int)
    out = reliability_plot(y, p, tmp_path / "rel.png", "defect risk: calibration on test")
    assert out == tmp_path / "rel.png"
    assert_png(out)
    with_baseline = reliability_plot(
        y, p, tmp_path / "sub" / "rel_b.png", "with baseline", n_bins=5, baseline_prob=np.full(p.size, y.mean())
    )
    assert_png(with_baseline)


def test_coverage_plot_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pred = rng.gamma(2.0, 5.0, 400)
    y = pred + rng.normal(0.0, 1.0 + 0.3 * pred)
    pred[:60] = 0.0  # many ties, as with milestones predicted on time
    half = 1.28 * (1.0 + 0.3 * pred)
    out = coverage_plot(y, pred, pred - half, pred + half, 0.8, tmp_path / "cov.png", "delay: range coverage")
    assert out == tmp_path / "cov.png"
    assert_png(out)


@pytest.fixture(scope="module")
def tiny_model() -> tuple[lgb.Booster, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 300
    X = pd.DataFrame(
        {
            "spi": rng.normal(1.0, 0.1, n),
            "open_ncrs": rng.poisson(2.0, n).astype(float),
            "trade": pd.Categorical(rng.choice(["civil", "mep", "finishes"], n)),
            "client_nps": rng.normal(30.0, 20.0, n),
        }
    )
    X.loc[X.index[:40], "client_nps"] = np.nan
    X.loc[X.index[40:60], "trade"] = np.nan
    logit = -1.0 + 2.0 * (1.0 - X["spi"]) * 5 + 0.4 * X["open_ncrs"] + (X["trade"] == "mep") * 1.0
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    params = {
        "objective": "binary",
        "verbose": -1,
        "num_leaves": 7,
        "min_data_in_leaf": 10,
        "seed": 0,
        "num_threads": 1,
    }
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=20)
    return booster, X


def test_shap_summary_plot_with_categorical_and_nan(tiny_model: tuple[lgb.Booster, pd.DataFrame], tmp_path: Path):
    booster, X = tiny_model
    contrib = booster.predict(X, pred_contrib=True)
    assert contrib.shape == (len(X), X.shape[1] + 1)
    out = shap_summary_plot(contrib, X, tmp_path / "shap.png", "defect risk: SHAP on test", max_display=3)
    assert out == tmp_path / "shap.png"
    assert_png(out)
    assert X["trade"].dtype == "category"  # the caller's frame is left alone


def test_shap_summary_plot_rejects_contributions_without_bias(tiny_model: tuple[lgb.Booster, pd.DataFrame], tmp_path):
    booster, X = tiny_model
    contrib = booster.predict(X, pred_contrib=True)
    with pytest.raises(ValueError, match="bias"):
        shap_summary_plot(contrib[:, :-1], X, tmp_path / "shap.png", "no bias")


def test_importance_plot_writes_png(tiny_model: tuple[lgb.Booster, pd.DataFrame], tmp_path: Path) -> None:
    booster, _ = tiny_model
    out = importance_plot(booster, tmp_path / "imp.png", "defect risk: gain importance", top=3)
    assert out == tmp_path / "imp.png"
    assert_png(out)


def test_plots_close_their_figures(tiny_model: tuple[lgb.Booster, pd.DataFrame], tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    booster, X = tiny_model
    before = len(plt.get_fignums())
    rng = np.random.default_rng(4)
    p = rng.uniform(size=50)
    reliability_plot((p > 0.5).astype(int), p, tmp_path / "a.png", "a")
    coverage_plot(p, p, p - 0.1, p + 0.1, 0.9, tmp_path / "b.png", "b")
    shap_summary_plot(booster.predict(X, pred_contrib=True), X, tmp_path / "c.png", "c")
    importance_plot(booster, tmp_path / "d.png", "d")
    assert len(plt.get_fignums()) == before


# ------------------------------------------------------------------------------------------------------------------
# model card


def full_card(**changes: object) -> ModelCard:
    fields: dict[str, object] = {
        "name": "defect_risk",
        "version": "3",
        "target": "First-pass acceptance of the milestone fails.",
        "intended_use": "Rank the milestones of the coming weeks for an extra inspection.",
        "not_intended_for": ["Judging a subcontractor's staff.", "Pricing a bid."],
        "dataset_fingerprint": "sha256:abc123",
        "rows": {"train": 12000, "calibration": 2500, "test": 3100},
        "as_of_windows": {
            "train": (pd.Timestamp("2019-01-07"), pd.Timestamp("2021-06-28")),
            "calibration": ("2021-07-05", "2021-12-27"),
            "test": (pd.Timestamp("2022-01-03"), pd.Timestamp("2022-06-27")),
        },
        "n_features": 48,
        "metrics": {
            "model": {"pr_auc": 0.41234567, "brier": 0.0712345, "ece": 0.012345},
            "logistic_regression": {"pr_auc": 0.3312, "brier": 0.0801, "ece": 0.02},
            "reference_class": {"pr_auc": 0.12, "brier": 0.0899},
            "oracle": {"pr_auc": 0.5, "brier": 0.0655, "ece": 0.004},
        },
        "lifts": {"pr_auc_vs_reference_class": 3.4362},
        "backtest": [
            {"fold": 1, "window": ("2021-01-04", "2021-06-28"), "metrics": {"pr_auc": 0.39, "brier": 0.07}},
            {"fold": 2, "window": ("2021-07-05", "2021-12-27"), "pr_auc": 0.42, "brier": 0.069},
        ],
        "known_limits": ["Trained on a synthetic world."],
        "created": "2024-05-01T10:00:00+00:00",
        "git_commit": "0123abcd",
    }
    fields.update(changes)
    return ModelCard(**fields)  # type: ignore[arg-type]


def test_model_card_full() -> None:
    md = model_card(full_card())
    assert md.startswith("# Model card: defect_risk\n")
    for row in ("model", "logistic_regression", "reference_class", "oracle"):
        assert f"| {row} |" in md
    assert "| predictor | pr_auc | brier | ece |" in md
    assert "| model | 0.4123 | 0.07123 | 0.01235 |" in md
    assert "| reference_class | 0.12 | 0.0899 | — |" in md  # a metric a row lacks is a dash
    assert "| train | 12,000 | 2019-01-07 | 2021-06-28 |" in md
    assert "| calibration | 2,500 | 2021-07-05 | 2021-12-27 |" in md
    assert "sha256:abc123" in md and "**Features:** 48" in md
    assert "| pr_auc_vs_reference_class | 3.436 |" in md
    assert "| 1 | 2021-01-04 → 2021-06-28 | 0.39 | 0.07 |" in md
    assert "| 2 | 2021-07-05 → 2021-12-27 | 0.42 | 0.069 |" in md
    for section in ("## Not intended for", "## Lift", "## Backtest", "## Known limits"):
        assert section in md
    assert "- Pricing a bid." in md and "0123abcd" in md and "**Version:** 3" in md
    assert "None" not in md and "nan" not in md.lower()


def test_model_card_leaves_out_missing_pieces() -> None:
    metrics = {
        "model": {"mae": 4.5678, "coverage": 0.8012, "big": 123456.7},
        "reference_class": {"mae": 7.1, "coverage": float("nan"), "big": 1.0},
    }
    md = model_card(
        full_card(version=None, git_commit=None, lifts=None, backtest=None, known_limits=[], metrics=metrics)
    )
    assert "| model | 4.568 | 0.8012 | 123,457 |" in md
    assert "| reference_class | 7.1 | — | 1 |" in md
    assert "oracle" not in md
    for absent in ("## Lift", "## Backtest", "## Known limits", "Version", "Git commit"):
        assert absent not in md
    assert "None" not in md and "nan" not in md.lower()


def test_model_card_escapes_pipes_and_accepts_plain_text_not_intended_for() -> None:
    md = model_card(full_card(not_intended_for="Anything | else", lifts={}, backtest=[]))
    assert "- Anything \\| else" not in md  # bullet text is not a table cell
    assert "- Anything | else" in md
    assert "## Lift" not in md and "## Backtest" not in md
    md = model_card(full_card(metrics={"a|b": {"x": 1.0}}))
    assert "| a\\|b | 1 |" in md
