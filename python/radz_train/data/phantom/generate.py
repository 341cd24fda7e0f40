"""Public entry points: one case (`generate_case`) or a series of cases (`generate_cases`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from radz_train.data.phantom.acquisition import SITES
from radz_train.data.phantom.model import Finding, PhantomCase, labels_from_findings
from radz_train.data.phantom.patient import sample_anatomy
from radz_train.data.phantom.render import apply_anatomy_effects, render
from radz_train.data.phantom.sampling import sample_findings
from radz_train.data.phantom.seeding import case_seed, check_int

__all__ = ["generate_case", "generate_cases"]


def _check_site_and_size(site: str, size: int) -> int:
    if site not in SITES:
        raise ValueError(f"site must be one of {tuple(SITES)}, got {site!r}")
    size = check_int("size", size, 32)
    if size > 4096:
        raise ValueError(f"size must be <= 4096, got {size}")
    return size


def generate_case(
    index: int,
    *,
    seed: int = 0,
    site: str = "site_a",
    size: int = 256,
    findings: Sequence[Finding] | None = None,
    withhold: Sequence[str] = (),
) -> PhantomCase:
    """Generate case `index` of the phantom series `seed` as acquired at `site`.

    Args:
        index: case number (>= 0); with `seed` it fixes anatomy and findings.
        seed: base seed of the series (>= 0).
        site: key of SITES; changes the acquisition only.
        size: image side in pixels (32..4096).
        findings: override the sampled findings (e.g. to render the same patient without
            one finding); None draws them with `sample_findings`.
        withhold: finding names the report must not name (described by their signs only).

    Returns:
        PhantomCase with image, labels and report.
    """
    index = check_int("index", index)
    seed = check_int("seed", seed)
    size = _check_site_and_size(site, size)
    cseed = case_seed(seed, index)
    found = list(sample_findings(index, seed=seed) if findings is None else findings)
    for f in found:
        if not isinstance(f, Finding):
            raise ValueError(f"findings must contain Finding objects, got {type(f).__name__}")  # noqa: TRY004
    anat = sample_anatomy(cseed)
    apply_anatomy_effects(anat, found)
    image, acq = render(anat, found, cseed, SITES[site], size, site)
    from radz_train.data.reports import write_report  # local import: reports imports this package

    report = write_report(found, seed=cseed, withhold=withhold)
    return PhantomCase(
        index=index,
        seed=seed,
        site=site,
        findings=found,
        labels=labels_from_findings(found),
        report=report,
        image=image,
        acquisition=acq,
    )


def generate_cases(
    n: int,
    *,
    seed: int = 0,
    sites: Sequence[str] = ("site_a",),
    size: int = 256,
    start: int = 0,
    withhold: Sequence[str] = (),
) -> Iterator[PhantomCase]:
    """Yield cases start .. start+n-1; case i is acquired at sites[i % len(sites)]."""
    n = check_int("n", n)
    start = check_int("start", start)
    if isinstance(sites, str) or not sites:
        raise ValueError(f"sites must be a non-empty sequence of site names, got {sites!r}")
    for s in sites:
        if s not in SITES:
            raise ValueError(f"sites must contain only {tuple(SITES)}, got {s!r}")
    for i in range(start, start + n):
        yield generate_case(i, seed=seed, site=sites[i % len(sites)], size=size, withhold=withhold)
