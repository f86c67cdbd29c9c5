"""One check shared by the engine's and the HTTP service's serving-equals-training tests."""

from __future__ import annotations


def assert_same_milestone_answer(target: str, got: dict, expected: dict, i: int) -> None:
    """A served milestone answer for ``target`` equals the training pipeline's predictions of row ``i``, exactly."""
    if target == "defect_risk":
        assert got["probability"] == expected["probability"][i]
    else:
        assert got["expected_slip_days"] == expected["expected_slip_days"][i]
        assert got["range_days"] == [expected["lower_days"][i], expected["upper_days"][i]]
        assert got["late_probability"] == expected["late_probability"][i]
