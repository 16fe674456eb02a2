"""The Birch-Murnaghan fit of dev/demo --workflow si-eos (pure logic, no stack): it recovers
the parameters of curves made from known ones, and refuses data without a minimum inside."""

import numpy as np
import pytest

from firecrest_dev.qe_workflow import EV_PER_A3_IN_GPA, FitError, fit_birch_murnaghan


def _birch_murnaghan(v: np.ndarray, e0: float, v0: float, b0: float, b1: float) -> np.ndarray:
    eta = (v0 / v) ** (2 / 3)
    return e0 + 9 * v0 * b0 / 16 * ((eta - 1) ** 3 * b1 + (eta - 1) ** 2 * (6 - 4 * eta))


@pytest.mark.parametrize(("b1", "points"), [(4.0, 7), (4.3, 9), (4.0, 3)])
def test_fit_recovers_the_curve_it_was_made_from(b1: float, points: int) -> None:
    # Silicon-like: V0 = 40 Å^3 per 2-atom cell, B0 = 96 GPa.
    v0, b0 = 40.0, 96.0 / EV_PER_A3_IN_GPA
    volumes = np.linspace(0.91 * v0, 1.09 * v0, points)
    fit = fit_birch_murnaghan(list(volumes), list(_birch_murnaghan(volumes, -215.5, v0, b0, b1)))
    assert fit.volume == pytest.approx(v0, rel=1e-3 if points >= 5 else 5e-3)
    assert fit.a == pytest.approx((4 * v0) ** (1 / 3), rel=1e-3)
    assert fit.bulk_modulus == pytest.approx(96.0, rel=1e-2 if points >= 5 else 5e-2)
    assert fit.energy == pytest.approx(-215.5, abs=1e-4)


def test_fit_refuses_a_curve_without_a_minimum_inside() -> None:
    volumes = [30.0, 31.0, 32.0, 33.0, 34.0]
    with pytest.raises(FitError, match="no single minimum"):
        fit_birch_murnaghan(volumes, [-1.0, -2.0, -3.0, -4.0, -5.0])
    with pytest.raises(FitError, match="at least 3"):
        fit_birch_murnaghan(volumes[:2], [-1.0, -2.0])
