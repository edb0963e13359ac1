import numpy as np
import pytest

from liveness_service.tools import pad_metrics


def test_apcer_and_bpcer_count_the_right_side_of_the_threshold():
    attacks = np.array([0.1, 0.4, 0.6, 0.9])
    live = np.array([0.3, 0.7, 0.8, 0.95])
    assert pad_metrics.apcer(attacks, 0.5) == 0.5  # 0.6 and 0.9 accepted
    assert pad_metrics.bpcer(live, 0.5) == 0.25  # 0.3 rejected
    assert pad_metrics.apcer(attacks, 0.9) == 0.25  # a score equal to the threshold is accepted as live


def test_threshold_for_apcer_is_the_lowest_meeting_the_target_for_every_type():
    attacks = {"print": np.array([0.1, 0.2, 0.3]), "replay": np.array([0.5, 0.6, 0.8, 0.9])}
    threshold = pad_metrics.threshold_for_apcer(attacks, 0.0)
    assert all(pad_metrics.apcer(s, threshold) == 0.0 for s in attacks.values())
    assert threshold == pytest.approx(0.9)
    # 25 % allowed: one replay (0.9) may pass, so the threshold drops just above 0.8.
    assert pad_metrics.threshold_for_apcer(attacks, 0.25) == pytest.approx(0.8)


def test_report_holds_iso_numbers():
    live = np.array([0.9, 0.95, 0.4, 0.99])
    attacks = {"print": np.array([0.05, 0.1]), "replay": np.array([0.3, 0.92])}
    result = pad_metrics.report(live, attacks, 0.5)
    assert result.apcer_by_type == {"print": 0.0, "replay": 0.5}
    assert result.apcer_max == 0.5
    assert result.bpcer == 0.25
    threshold, bpcer_at_1 = result.bpcer_at_apcer[0.01]
    assert threshold > 0.92 and bpcer_at_1 == 0.5  # 0.4 and 0.9 rejected
    assert result.auc == pytest.approx(14 / 16)
    assert any("APCER[replay]" in line for line in result.lines())


def test_balanced_threshold_trades_both_errors():
    live = np.array([0.6, 0.7, 0.8, 0.9])
    attacks = {"print": np.array([0.1, 0.2]), "replay": np.array([0.3, 0.65])}
    threshold = pad_metrics.balanced_threshold(live, attacks)
    # Just above 0.3: replay APCER 50 %, BPCER 0 %; just above 0.65: APCER 0 %, BPCER 25 % (the minimum).
    assert 0.65 < threshold <= 0.7
    assert pad_metrics.apcer(attacks["replay"], threshold) == 0.0 and pad_metrics.bpcer(live, threshold) == 0.25
