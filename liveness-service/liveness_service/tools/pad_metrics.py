"""ISO/IEC 30107-3 style error rates for a p(live) score (no I/O; used by evaluate and train)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def apcer(attack_scores: np.ndarray, threshold: float) -> float:
    """Attack presentations accepted as live (score >= threshold), as a fraction."""
    return float(np.mean(attack_scores >= threshold)) if len(attack_scores) else float("nan")


def bpcer(live_scores: np.ndarray, threshold: float) -> float:
    """Live presentations rejected as attacks (score < threshold), as a fraction."""
    return float(np.mean(live_scores < threshold)) if len(live_scores) else float("nan")


def threshold_for_apcer(attack_scores_by_type: dict[str, np.ndarray], target: float) -> float:
    """The lowest threshold at which every attack type's APCER is <= target (best for live users).

    APCER only changes just above an attack score, so those points (and 0) are the only candidates.
    """
    scores = np.concatenate([np.asarray(s, dtype=np.float64) for s in attack_scores_by_type.values()])
    candidates = np.sort(np.concatenate([[0.0], np.nextafter(scores, np.inf)]))
    for threshold in candidates:
        if all(apcer(s, threshold) <= target for s in attack_scores_by_type.values()):
            return float(threshold)
    return float(candidates[-1])


def balanced_threshold(live_scores: np.ndarray, attack_scores_by_type: dict[str, np.ndarray]) -> float:
    """The threshold minimising max-APCER + BPCER (the lowest such), for small validation sets where a fixed
    APCER target would hinge on one or two attack images."""
    scores = np.concatenate(
        [np.asarray(live_scores, np.float64), *[np.asarray(s, np.float64) for s in attack_scores_by_type.values()]]
    )
    candidates = np.sort(np.unique(np.concatenate([[0.0], np.nextafter(scores, np.inf)])))
    costs = [max(apcer(s, t) for s in attack_scores_by_type.values()) + bpcer(live_scores, t) for t in candidates]
    return float(candidates[int(np.argmin(costs))])


@dataclass(frozen=True)
class Report:
    threshold: float
    apcer_by_type: dict[str, float]
    apcer_max: float
    bpcer: float
    bpcer_at_apcer: dict[float, tuple[float, float]]  # target -> (threshold, BPCER)
    live_count: int
    attack_counts: dict[str, int]
    auc: float

    def lines(self) -> list[str]:
        out = [f"presentations: live {self.live_count}, attacks {self.attack_counts}"]
        out.append(f"threshold {self.threshold:.4f}")
        for kind, value in self.apcer_by_type.items():
            out.append(f"  APCER[{kind}] = {value:.2%}")
        out.append(f"  APCER(max)  = {self.apcer_max:.2%}")
        out.append(f"  BPCER       = {self.bpcer:.2%}")
        for target, (threshold, value) in self.bpcer_at_apcer.items():
            out.append(f"  BPCER @ APCER={target:.0%}: {value:.2%} (threshold {threshold:.4f})")
        out.append(f"  ROC AUC (live vs all attacks) = {self.auc:.4f}")
        return out


def roc_auc(live_scores: np.ndarray, attack_scores: np.ndarray) -> float:
    """P(score(live) > score(attack)), ties counted half (Mann-Whitney)."""
    if not len(live_scores) or not len(attack_scores):
        return float("nan")
    greater = (live_scores[:, None] > attack_scores[None, :]).mean()
    ties = (live_scores[:, None] == attack_scores[None, :]).mean()
    return float(greater + 0.5 * ties)


def report(
    live_scores: np.ndarray, attack_scores_by_type: dict[str, np.ndarray], threshold: float, targets=(0.01, 0.05)
) -> Report:
    by_type = {kind: apcer(scores, threshold) for kind, scores in sorted(attack_scores_by_type.items())}
    at_targets = {}
    for target in targets:
        operating = threshold_for_apcer(attack_scores_by_type, target)
        at_targets[target] = (operating, bpcer(live_scores, operating))
    all_attacks = np.concatenate(list(attack_scores_by_type.values())) if attack_scores_by_type else np.zeros(0)
    return Report(
        threshold=threshold,
        apcer_by_type=by_type,
        apcer_max=max(by_type.values()) if by_type else float("nan"),
        bpcer=bpcer(live_scores, threshold),
        bpcer_at_apcer=at_targets,
        live_count=len(live_scores),
        attack_counts={kind: len(scores) for kind, scores in sorted(attack_scores_by_type.items())},
        auc=roc_auc(live_scores, all_attacks),
    )
