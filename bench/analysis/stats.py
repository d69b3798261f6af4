"""Cluster-aware bootstrap intervals and paired comparisons for per-image benchmark scores.

Estimand
--------
A run gives one score ``y`` per generated image. Each image belongs to a subject ``s`` and a prompt
``p`` (a subject gets every prompt of its prompt set ``P_s``) and has an image index / seed. The
reported score is

    theta_hat = mean over subjects s of [ mean over p in P_s of ( mean over the images of (s, p) ) ]

so every subject weighs the same and, within a subject, every prompt weighs the same. For a balanced
design (every subject x prompt cell has the same number of images) this is the plain mean of all
images. NaN scores (a metric undefined for an image) are dropped first; a cell left empty is then
simply absent from its subject's prompt set.

``theta_hat`` estimates one of two population quantities, chosen with ``prompt_mode``:

* ``"fixed"`` (default): the subjects are a random sample from a population of subjects; the prompt
  set is fixed. The estimand is the expected score of a new subject over *this* prompt set
  (expectation also over generation noise). The interval resamples subjects with replacement and
  keeps each drawn subject's images as they are. Given the prompt set the per-subject scores are
  i.i.d., so this is the ordinary bootstrap of their mean. Images are deliberately *not* resampled
  again inside subjects: their noise is already part of the spread between subject scores, and
  counting it twice widens the interval (about 99 % actual coverage for a nominal 95 % when image
  noise dominates).
* ``"random"``: the prompts are a random sample from a population of prompts too, crossed with the
  subjects; the estimand is the mean over both populations. Subjects and prompts are resampled
  independently with replacement and each drawn (subject, prompt) cell enters whole, with its
  multiplicity. No bootstrap of a crossed array is exactly unbiased (McCullagh, 2000, "Resampling
  and exchangeable arrays"); this row-column one errs on the wide side: it counts the variance of
  the subject x prompt interaction and image noise about three times over. That is negligible when
  subject or prompt effects dominate and makes the interval ~1.4x too wide (~99 % coverage) when
  interaction and noise dominate; images are not resampled within cells, which would widen it more.
  Prompts are drawn from the union of all prompt labels; a drawn subject uses the drawn prompts of
  its own set, and a drawn subject with none of them drops out of that replicate. This mode needs
  prompt labels shared across subjects (crossed, not nested, prompts) and at least two prompts.

Both modes need at least two subjects: with one subject there is no between-subject spread to
resample, and a zero-width interval would be misleading, so a ValueError is raised.

Which interval, by number of subjects
-------------------------------------
The default (``method="auto"``) is the studentized bootstrap (bootstrap-t): each resample's
estimate is standardized by its own standard error, and the interval inverts the quantiles of that
t statistic. Its standard error is the spread of the subject scores over sqrt(S) with fixed
prompts; with random prompts it is the two-way random-effects (ANOVA) one, (MS_subjects +
MS_prompts - MS_residual) / (S P), floored at MS_residual / (S P), which needs every subject to
have every prompt.
The percentile interval is exactly [min, max] of the subject scores' bootstrap means at small S and
undercovers badly; the bootstrap-t corrects for the scale and skew the percentile interval ignores.

Below ``MIN_INTERVAL_SUBJECTS`` (5) subjects no method keeps its promise: the bootstrap-t breaks
down (too few distinct resamples), the percentile interval and BCa cover 65-75 % at 3 subjects, and
Student's t interval, right for normal subject effects, covers 90 % at 3 subjects when they are
skewed. There the mean is reported without an interval, and ``Interval.note`` says why; this holds
for every ``method``.

Where most subjects score alike (shares at 0 % or 100 %, as the toy world's oracle gives), more
than a tail's worth of resamples draw no spread at all; their t statistic is infinite, and so is
a bootstrap-t bound. There ``"auto"`` gives the percentile interval instead, which stays within
the scores, and ``Interval.note`` says so; ``method="studentized"`` keeps the infinite bound.

Measured coverage of a nominal 95 % interval with fixed prompts (2000 simulated suites per cell,
the 5, 10 and 30 columns from tests/test_stats.py, the 20 column and the very skewed row from the
same model simulated outside the tests; subject effects of variance 1, subject x prompt 0.3 over
10 prompts, image noise 0.5 over 4 images per cell; "skewed" = centred gamma, skewness 1; "very
skewed" = centred exponential, skewness 2):

    subjects                     5      10     20     30
    studentized, normal        .948   .944   .955   .951
    studentized, skewed        .952   .946   .956   .944
    studentized, very skewed   .922   .932   .936   .937
    percentile, normal         .828   .894   .934   .940
    percentile, skewed         .835   .888   .927   .934
    BCa, skewed                .820   .892   .931   .921

With random prompts (600 suites per cell, prompt effects of variance 0.5): studentized .947 /
.930 / .950 at 5 / 10 / 30 subjects for normal subject effects, .922 / .940 / .938 skewed;
the row-column percentile interval .88-.92 at 5-10 subjects. The percentile
and BCa intervals stay available (``method=``) and every table names the method that made each
interval. Results depend only on the inputs and ``seed`` (``numpy.random.default_rng``); labels
are sorted, so the order of the rows does not matter.

Paired comparisons
------------------
The p-value of a paired comparison rests on the subjects' mean differences and takes the larger
of two tests' p-values, so it holds its level wherever either test does:

- A sign-flip (randomization) test: under the null hypothesis that the two methods do equally
  well, each subject's mean difference is as likely to be positive as negative, so the observed
  mean difference is compared with the means of every pattern of flipped signs. It is exact,
  enumerating all 2^S patterns, up to ``EXACT_SIGN_FLIPS`` subjects, and a Monte Carlo test with
  as many random patterns as bootstrap resamples beyond (p = (1 + hits) / (draws + 1), still
  valid). It cannot go below 2 / 2^S: with 3 subjects the smallest p-value is 0.25, however far
  apart the runs are, because 3 subjects cannot show more. A bootstrap p-value alone would claim
  far more (0.0002 when all three agree in sign). Studentizing its statistic changes nothing: a
  sign flip keeps the sum of squares, so the t statistic is an increasing function of the mean
  and orders the patterns as the mean does.
- A studentized bootstrap test (``studentized_bootstrap_test``), from ``MIN_INTERVAL_SUBJECTS``
  subjects: the t statistic of the mean difference against the bootstrap distribution of the
  resampled t, equal-tailed. The sign-flip test needs the differences to be symmetric about 0;
  where the methods are equal on average but the differences are skewed (one subject fails
  badly) it rejects too often (measured at a nominal 5% with centred exponential differences:
  9.3% with 10 subjects, 7.1% with 30). The bootstrap-t corrects the skewness term of the mean's
  distribution; the larger p-value rejects 4.7% and 3.6% there, and stays at or under the
  sign-flip test's exact level when the differences are symmetric.

The interval of the difference stays the bootstrap interval of the mode in use.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "Comparison",
    "Interval",
    "bootstrap_interval",
    "holm",
    "paired_comparison",
    "pairwise_comparisons",
    "paired_p_value",
    "sign_flip_test",
    "studentized_bootstrap_test",
    "subject_means",
]

PROMPT_MODES = ("fixed", "random")
EXACT_SIGN_FLIPS = 20  # subjects up to which every sign pattern is enumerated (2^20 patterns)
CI_METHODS = ("auto", "studentized", "percentile", "bca")
MIN_INTERVAL_SUBJECTS = 5  # below this no interval method keeps its coverage (module docstring)

# Resamples are drawn in chunks so that the (chunk x subjects) and (chunk x prompts) weight matrices
# stay around this many elements (~8 MB each in float64), whatever the number of resamples.
_CHUNK_ELEMENTS = 1_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n_subjects: int
    n_images: int
    n_resamples: int
    confidence: float
    method: str  # the method that made the interval, or "none" (then low = high = NaN)
    prompt_mode: str
    note: str = ""  # why there is no interval, or why "auto" did not take the studentized one


@dataclass(frozen=True)
class Comparison:
    """Run a minus run b on the same images: ``diff = mean_a - mean_b`` with interval and p-value.

    ``p_holm`` is the Holm-adjusted p-value within a family of comparisons
    (:func:`pairwise_comparisons`); for a single comparison it equals ``p_value``.
    """

    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p_value: float
    p_holm: float
    n_subjects: int
    n_images: int
    n_resamples: int
    confidence: float
    prompt_mode: str
    name_a: str = "a"
    name_b: str = "b"
    p_method: str = ""  # how the p-value was computed (exact or Monte Carlo sign-flip test)
    ci_method: str = ""  # the method that made the interval, or "none"
    note: str = ""  # why there is no interval, when there is none


@dataclass(frozen=True)
class _Design:
    """Scores reduced to (subject, prompt) cell means: all the estimator and the resampling need."""

    cells: np.ndarray  # (S, P) mean score of each cell, 0.0 where the cell has no image
    present: np.ndarray  # (S, P) 1.0 where the cell has images, else 0.0
    n_images: int

    @property
    def subject_means(self) -> np.ndarray:
        return self.cells.sum(axis=1) / self.present.sum(axis=1)


# --------------------------------------------------------------------------------------- input


def _codes(labels: Any, name: str, n: int) -> tuple[np.ndarray, int]:
    """Integer codes 0..k-1 for arbitrary hashable labels, in sorted label order when sortable."""
    arr = np.asarray(labels)
    if arr.ndim == 1 and arr.dtype != object and arr.shape[0] == n:
        uniq, codes = np.unique(arr, return_inverse=True)
        return codes.reshape(-1), len(uniq)
    items = list(labels)
    if len(items) != n:
        raise ValueError(f"{name} has length {len(items)}, but values has length {n}")
    distinct = set(items)
    try:
        order = sorted(distinct)
    except TypeError:  # mixed, unorderable labels: first-appearance order is still deterministic
        order = list(dict.fromkeys(items))
    index = {label: i for i, label in enumerate(order)}
    return np.fromiter((index[x] for x in items), dtype=np.intp, count=n), len(order)


def _check_options(prompt_mode: str, n_resamples: int, confidence: float, method: str) -> None:
    if prompt_mode not in PROMPT_MODES:
        raise ValueError(f"prompt_mode must be one of {PROMPT_MODES}, got {prompt_mode!r}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")


def _as_values(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one score per image), got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: there are no scores to analyse")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite scores")
    return arr


def _design(values: np.ndarray, subjects: Any, prompts: Any, prompt_mode: str) -> _Design:
    """Drop NaN scores and reduce to cell means; check the design supports the interval."""
    n = values.shape[0]
    if len(subjects) != n or len(prompts) != n:
        raise ValueError(
            f"length mismatch: {n} values, {len(subjects)} subject labels, "
            f"{len(prompts)} prompt labels (need one of each per image)"
        )
    keep = ~np.isnan(values)
    if not keep.any():
        raise ValueError("every score is NaN: there are no scores to analyse")
    subj, n_subj = _codes(subjects, "subjects", n)
    prom, n_prom = _codes(prompts, "prompts", n)
    if not keep.all():  # re-code so that subjects/prompts with only NaN scores disappear
        subj, n_subj = _codes(subj[keep], "subjects", int(keep.sum()))
        prom, n_prom = _codes(prom[keep], "prompts", int(keep.sum()))
        values = values[keep]
    if prompt_mode == "random" and n_prom < 2:
        raise ValueError(
            f"prompt_mode='random' needs at least 2 distinct prompts, got {n_prom}; "
            "use prompt_mode='fixed'"
        )
    return _cell_means(values, subj, n_subj, prom, n_prom)


def _cell_means(
    values: np.ndarray, subj: np.ndarray, n_subj: int, prom: np.ndarray, n_prom: int
) -> _Design:
    """Scores (no NaN) reduced to the mean of each (subject, prompt) cell."""
    cell = subj * n_prom + prom
    sums = np.bincount(cell, weights=values, minlength=n_subj * n_prom)
    counts = np.bincount(cell, minlength=n_subj * n_prom)
    present = counts > 0
    cells = np.divide(sums, counts, out=np.zeros_like(sums), where=present)
    shape = (n_subj, n_prom)
    return _Design(cells.reshape(shape), present.reshape(shape).astype(float), values.shape[0])


def subject_means(values: Any, subjects: Any, prompts: Any) -> dict[Any, float]:
    """Each subject's score: the mean over its prompts of the mean over its images. NaN scores
    are dropped, and a subject left with none is left out. The run's score is the mean of these;
    every table, summary and comparison that shows a subject's score takes it from here."""
    if len(values) == 0:
        return {}
    values = _as_values(values, "values")
    keep = ~np.isnan(values)
    subject_labels = np.asarray(list(subjects), dtype=object)[keep]
    prompt_labels = np.asarray(list(prompts), dtype=object)[keep]
    values = values[keep]
    if not values.size:
        return {}
    order = list(dict.fromkeys(subject_labels))
    subj, _ = _codes(subject_labels, "subjects", values.shape[0])
    prom, n_prom = _codes(prompt_labels, "prompts", values.shape[0])
    design = _cell_means(values, subj, int(subj.max()) + 1, prom, n_prom)
    by_code = dict(zip(subj, subject_labels, strict=True))
    means = {by_code[code]: float(m) for code, m in enumerate(design.subject_means)}
    return {label: means[label] for label in order}


# ------------------------------------------------------------------------------------ resampling


def _estimate(design: _Design) -> float:
    """The point estimate: equal weight per subject, and per prompt within a subject."""
    return float(design.subject_means.mean())


def _theta(design: _Design, idx: np.ndarray, v: np.ndarray | None) -> np.ndarray:
    """The estimator on resampled designs: one per row of ``idx``.

    ``idx`` (B, m) holds the drawn subjects (with repeats); ``v`` (B, P) how often each prompt was
    drawn, or None to keep every prompt once (fixed prompt set: each subject's score is then fixed).
    Bootstrap resamples and jackknife (leave-one-out) designs both go through here.
    """
    if v is None:
        return design.subject_means[idx].mean(axis=1)
    # Contiguous (P, S) operands: with a transposed view, multi-threaded OpenBLAS takes a path that
    # is ~100x slower for these small products on a busy machine.
    num = v @ np.ascontiguousarray(design.cells.T)  # (B, S): summed means of the drawn prompts
    den = v @ np.ascontiguousarray(design.present.T)  # (B, S): how many of them were drawn
    scores = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)
    scores = np.take_along_axis(scores, idx, axis=1)
    # A drawn subject none of whose prompts was drawn drops out of the replicate.
    ok = ~np.isnan(scores)
    n_ok = ok.sum(axis=1)
    total = np.where(ok, scores, 0.0).sum(axis=1)
    return np.divide(total, n_ok, out=np.full(n_ok.shape, np.nan), where=n_ok > 0)


def _counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """(b, n) counts of each of n units in b resamples of size n with replacement."""
    idx = rng.integers(0, n, size=(b, n))
    idx += np.arange(b)[:, None] * n
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)


def _replicates(
    design: _Design, prompt_mode: str, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    n_subj, n_prom = design.cells.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(n_subj, n_prom))
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n_subj, size=(b, n_subj))
        v = _counts(rng, b, n_prom) if prompt_mode == "random" else None
        out[start : start + b] = _theta(design, idx, v)
    return out


def _jackknife(design: _Design, prompt_mode: str) -> list[np.ndarray]:
    """Leave-one-out estimates: over subjects, and over prompts too when prompts are random."""
    n_subj, n_prom = design.cells.shape
    everyone = np.arange(n_subj)
    leave_subject_out = np.array([np.delete(everyone, s) for s in everyone])
    v = None if prompt_mode == "fixed" else np.ones((n_subj, n_prom))
    groups = [_theta(design, leave_subject_out, v)]
    if prompt_mode == "random":
        all_subjects = np.tile(everyone, (n_prom, 1))
        groups.append(_theta(design, all_subjects, 1.0 - np.eye(n_prom)))
    return [g[np.isfinite(g)] for g in groups]


def _percentile(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _bca(
    reps: np.ndarray, theta: float, jackknife: list[np.ndarray], confidence: float
) -> tuple[float, float]:
    """Efron's BCa interval; the acceleration is the skewness of the jackknife influence values.

    With several independently resampled factors (subjects and prompts), their influence values
    add their variances and third moments, each scaled by its own sample size.
    """
    if np.ptp(reps) == 0:  # no spread at all: nothing to correct
        return theta, theta
    # Clipped so that a point estimate outside every replicate gives an extreme quantile, not NaN.
    frac = np.clip(np.mean(reps < theta), 0.5 / reps.size, 1 - 0.5 / reps.size)
    z0 = ndtri(frac)
    third = second = 0.0
    for jk in jackknife:
        n = jk.size
        infl = (n - 1) * (jk.mean() - jk)
        third += np.sum(infl**3) / n**3
        second += np.sum(infl**2) / n**2
    accel = third / (6.0 * second**1.5) if second > 0 else 0.0
    alpha = 1.0 - confidence
    z = ndtri(np.array([alpha / 2, 1 - alpha / 2]))
    levels = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    low, high = np.quantile(reps, levels)
    return float(low), float(high)


def _standard_errors(cells: np.ndarray) -> np.ndarray:
    """Standard error of the estimate for each of B complete (S, P) cell arrays, prompts random:
    the two-way random-effects estimate (module docstring). With one prompt column it reduces
    to the subject-score spread over sqrt(S)."""
    b, n_subj, n_prom = cells.shape
    grand = cells.mean(axis=(1, 2))
    rows = cells.mean(axis=2)
    cols = cells.mean(axis=1)
    ms_subj = n_prom * ((rows - grand[:, None]) ** 2).sum(axis=1) / (n_subj - 1)
    if n_prom == 1:
        return np.sqrt(ms_subj / n_subj)
    ms_prom = n_subj * ((cols - grand[:, None]) ** 2).sum(axis=1) / (n_prom - 1)
    resid = cells - rows[:, :, None] - cols[:, None, :] + grand[:, None, None]
    ms_resid = (resid**2).sum(axis=(1, 2)) / ((n_subj - 1) * (n_prom - 1))
    return np.sqrt(np.maximum(ms_subj + ms_prom - ms_resid, ms_resid) / (n_subj * n_prom))


def _studentized(
    design: _Design, prompt_mode: str, n_resamples: int, rng: np.random.Generator, confidence: float
) -> tuple[float, float]:
    """The bootstrap-t interval: theta - q(1 - a/2) se, theta - q(a/2) se, with q the quantiles of
    (theta* - theta) / se* over the resamples."""
    n_subj, n_prom = design.cells.shape
    if prompt_mode == "fixed":
        base = design.subject_means[:, None]  # the prompts are fixed: a subject is its score
    elif design.present.all():
        base = design.cells
    else:
        raise ValueError(
            "the studentized interval with random prompts needs every subject scored on every "
            "prompt (a crossed design); use prompt_mode='fixed' or method='percentile'"
        )
    theta = float(base.mean())
    se = float(_standard_errors(base[None])[0])
    if se == 0:  # every subject (and prompt) scores the same: nothing varies
        return theta, theta
    t_stats = np.empty(n_resamples)
    chunk = max(1, _CHUNK_ELEMENTS // base.size)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        drawn = base[rng.integers(0, n_subj, size=(b, n_subj))]  # (b, S, P)
        if prompt_mode == "random":
            cols = rng.integers(0, n_prom, size=(b, 1, n_prom))
            drawn = np.take_along_axis(drawn, np.broadcast_to(cols, drawn.shape), axis=2)
        shift = drawn.mean(axis=(1, 2)) - theta
        se_star = _standard_errors(drawn)
        # A resample with no spread (one subject drawn S times) has an infinite t statistic.
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se_star > 0, shift / se_star, np.sign(shift) * np.inf)
        t_stats[start : start + b] = t
    alpha = 1.0 - confidence
    q_low, q_high = np.quantile(t_stats, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return theta - float(q_high) * se, theta - float(q_low) * se


def _resolve_method(method: str, n_subjects: int) -> tuple[str, str]:
    """The interval method to use for this many subjects, and why there is none when there is
    none."""
    if n_subjects < MIN_INTERVAL_SUBJECTS:
        return "none", (
            f"no interval with {n_subjects} subject{'s' * (n_subjects != 1)}: below "
            f"{MIN_INTERVAL_SUBJECTS} no interval method keeps 95% coverage"
        )
    return ("studentized" if method == "auto" else method), ""


def _interval(
    design: _Design, method: str, prompt_mode: str, n_resamples: int, confidence: float, seed: int
) -> tuple[float, float, str, str]:
    """(low, high, method used, note) of the estimate of a design."""
    requested = method
    method, note = _resolve_method(method, design.cells.shape[0])
    rng = np.random.default_rng(seed)
    if method == "none":
        return float("nan"), float("nan"), method, note
    if method == "studentized":
        low, high = _studentized(design, prompt_mode, n_resamples, rng, confidence)
        if requested != "auto" or math.isfinite(low) and math.isfinite(high):
            return low, high, method, note
        # More than a tail's worth of resamples had no spread (most subjects score alike, as
        # shares of 0% or 100% do): their t statistic is infinite, and so is a bound. The
        # percentile interval stays within the scores.
        method = "percentile"
        note = "studentized interval unbounded (too many resamples without spread): percentile"
        rng = np.random.default_rng(seed)
    reps = _replicates(design, prompt_mode, n_resamples, rng)
    reps = reps[np.isfinite(reps)]
    if method == "bca":
        low, high = _bca(reps, _estimate(design), _jackknife(design, prompt_mode), confidence)
    else:
        low, high = _percentile(reps, confidence)
    return low, high, method, note


# ---------------------------------------------------------------------------------------- public


def bootstrap_interval(
    values: Any,
    subjects: Any,
    prompts: Any,
    *,
    prompt_mode: str = "fixed",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    method: str = "auto",
    seed: int = 0,
) -> Interval:
    """Point estimate and cluster bootstrap interval of a run's score (see the module docstring).

    ``values`` holds one score per image (NaN = undefined, dropped); ``subjects`` and ``prompts``
    hold the image's subject and prompt labels (any hashable labels). ``method`` is ``"auto"``
    (the studentized bootstrap), ``"studentized"``, ``"percentile"`` or ``"bca"``; below
    ``MIN_INTERVAL_SUBJECTS`` subjects there is no interval whatever the method (NaN bounds, and
    ``note`` says why). ``prompt_mode`` is ``"fixed"`` or ``"random"``.
    """
    _check_options(prompt_mode, n_resamples, confidence, method)
    design = _design(_as_values(values, "values"), subjects, prompts, prompt_mode)
    low, high, used, note = _interval(
        design, method, prompt_mode, int(n_resamples), confidence, seed
    )
    return Interval(
        mean=_estimate(design),
        low=low,
        high=high,
        n_subjects=design.cells.shape[0],
        n_images=design.n_images,
        n_resamples=int(n_resamples),
        confidence=confidence,
        method=used,
        prompt_mode=prompt_mode,
        note=note,
    )


def paired_comparison(
    values_a: Any,
    values_b: Any,
    subjects: Any,
    prompts: Any,
    *,
    prompt_mode: str = "fixed",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    method: str = "auto",
    seed: int = 0,
) -> Comparison:
    """Compare two runs scored on the same images (aligned element by element by the caller).

    The estimator is linear in the scores, so the difference of the two runs' estimates is the
    estimate of the per-image differences; bootstrapping those differences with the cluster
    structure applies the identical resample to both runs. An image whose score is NaN in either
    run is dropped from both, so ``diff == mean_a - mean_b`` exactly.

    The interval of the difference is made as in :func:`bootstrap_interval` (``method``, and
    none below ``MIN_INTERVAL_SUBJECTS`` subjects). The two-sided p-value is
    ``paired_p_value`` of the subjects' mean differences (the module docstring).
    """
    _check_options(prompt_mode, n_resamples, confidence, method)
    a = _as_values(values_a, "values_a")
    b = _as_values(values_b, "values_b")
    if a.shape != b.shape:
        raise ValueError(
            f"length mismatch: values_a has {a.shape[0]} scores, values_b has {b.shape[0]}"
        )
    both = ~(np.isnan(a) | np.isnan(b))
    diff_values = np.where(both, a - b, np.nan)
    design = _design(diff_values, subjects, prompts, prompt_mode)
    mean_a, mean_b = (
        _estimate(_design(np.where(both, x, np.nan), subjects, prompts, prompt_mode))
        for x in (a, b)
    )
    low, high, ci_method, note = _interval(
        design, method, prompt_mode, int(n_resamples), confidence, seed
    )
    p_value, p_method = paired_p_value(design.subject_means, seed=seed, n_draws=int(n_resamples))
    return Comparison(
        mean_a=mean_a,
        mean_b=mean_b,
        diff=mean_a - mean_b,
        low=low,
        high=high,
        p_value=p_value,
        p_holm=p_value,
        n_subjects=design.cells.shape[0],
        n_images=design.n_images,
        n_resamples=int(n_resamples),
        confidence=confidence,
        prompt_mode=prompt_mode,
        p_method=p_method,
        ci_method=ci_method,
        note=note,
    )


def sign_flip_test(
    differences: Any,
    *,
    seed: int = 0,
    exact_up_to: int = EXACT_SIGN_FLIPS,
    n_draws: int = 10_000,
) -> tuple[float, str]:
    """Two-sided p-value that the mean of `differences` (one per subject) is 0, from the
    subjects' sign flips (scipy's permutation test with one sample); and how it was computed."""
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size < 1 or not np.isfinite(d).all():
        raise ValueError("sign_flip_test needs one finite difference per subject")
    if not d.any():
        return 1.0, "all differences are 0"
    n = d.size
    if n == 1:  # two patterns, +d and -d, equally extreme
        return 1.0, "exact sign-flip test over 1 subject (2 patterns)"
    exact = n <= exact_up_to
    result = stats.permutation_test(
        (d,),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=2**n if exact else n_draws,
        batch=1 << 16,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    if exact:
        return float(result.pvalue), f"exact sign-flip test over {n} subjects ({2**n} patterns)"
    return float(result.pvalue), f"sign-flip test over {n} subjects, {n_draws} random patterns"


def studentized_bootstrap_test(
    differences: Any, *, seed: int = 0, n_resamples: int = 10_000
) -> float:
    """Two-sided p-value that the mean of `differences` (one per subject) is 0, by the
    studentized bootstrap: t = mean / (sd / sqrt(S)) against t* = (mean* - mean) / (sd* / sqrt(S))
    of subjects resampled with replacement, p = 2 min(P(t* <= t), P(t* >= t)), each share counted
    as (1 + hits) / (resamples + 1). NaN where the differences do not vary (t is undefined)."""
    d = np.asarray(differences, dtype=float)
    n = d.size
    if n < 2 or np.ptp(d) == 0:
        return float("nan")
    mean = d.mean()
    t = mean / (d.std(ddof=1) / math.sqrt(n))
    rng = np.random.default_rng(seed)
    below = above = 0
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, chunk):
        drawn = d[rng.integers(0, n, (min(chunk, n_resamples - start), n))]
        shift = drawn.mean(axis=1) - mean
        se = drawn.std(axis=1, ddof=1) / math.sqrt(n)
        # A resample of one repeated value has no spread: its t is 0 at the mean, else infinite.
        flat = np.where(shift > 0, np.inf, np.where(shift < 0, -np.inf, 0.0))
        t_star = np.divide(shift, se, out=flat, where=se > 0)
        below += int((t_star <= t).sum())
        above += int((t_star >= t).sum())
    tail = min(below, above)
    return min(1.0, 2 * (1 + tail) / (n_resamples + 1))


def paired_p_value(differences: Any, *, seed: int = 0, n_draws: int = 10_000) -> tuple[float, str]:
    """The two-sided p-value of a paired comparison from its subjects' mean differences, and how
    it was made: the sign-flip test's, and from ``MIN_INTERVAL_SUBJECTS`` subjects the larger of
    it and the studentized bootstrap test's (the module docstring says why)."""
    p_flip, how = sign_flip_test(differences, seed=seed, n_draws=n_draws)
    d = np.asarray(differences, dtype=float)
    if d.size < MIN_INTERVAL_SUBJECTS:
        return p_flip, how
    p_boot = studentized_bootstrap_test(d, seed=seed, n_resamples=n_draws)
    if p_boot != p_boot:  # the differences do not vary: the sign-flip test alone
        return p_flip, how
    return max(p_flip, p_boot), (
        f"the larger of the {how} and the studentized bootstrap test ({n_draws} resamples)"
    )


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, returned in the input order.

    Sorted ascending, the i-th smallest (i = 0..m-1) becomes ``max_{j <= i} (m - j) * p_(j)``,
    capped at 1; rejecting where the adjusted value is below alpha controls the family-wise error.
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1] and not be NaN")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def pairwise_comparisons(
    runs: Mapping[str, Any], subjects: Any, prompts: Any, **kwargs: Any
) -> list[Comparison]:
    """Paired comparison of every pair of runs (in the mapping's order), Holm-adjusted p-values.

    ``kwargs`` go to :func:`paired_comparison`. Every pair uses the same seed, so the pairs share
    their resampled subjects and prompts (common random numbers).
    """
    names = list(runs)
    if len(names) < 2:
        raise ValueError(f"need at least 2 runs to compare, got {len(names)}")
    results = [
        dataclasses.replace(
            paired_comparison(runs[a], runs[b], subjects, prompts, **kwargs), name_a=a, name_b=b
        )
        for a, b in itertools.combinations(names, 2)
    ]
    adjusted = holm([r.p_value for r in results])
    return [dataclasses.replace(r, p_holm=float(q)) for r, q in zip(results, adjusted, strict=True)]
