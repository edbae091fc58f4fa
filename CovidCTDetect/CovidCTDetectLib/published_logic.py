"""Adding the papers' own released models from Slicer: the ``covidct import`` command in a background process.

The panel shows the licence (:func:`licence`) and asks the user to accept it before
:func:`import_published` runs; the new models are in the catalogue as soon as it returns, so the
model list can be refreshed at once (no restart). Nothing is downloaded: the user picks the files they
downloaded from the authors' repositories.
"""

from __future__ import annotations

from pathlib import Path

from .process import start_covidct

#: the papers whose released weights can be imported, with what to pick: (label, needs a lungs file)
PAPERS = {
    "decovnet": ("DeCoVNet (Zheng et al. 2020): classifier .pth and lung UNet .pth", True),
    "covid19net": ("COVID-19Net (Wang et al. 2020): Keras .h5 model", False),
}
#: catalogue names the import gives by default
DEFAULT_NAMES = {"decovnet": "decovnet-zheng2020", "covid19net": "covid19net-wang2020"}


def licence(paper: str) -> str:
    """The licence of ``paper``'s released weights, to show before the import."""
    from covidct.models.published import COVID19NET_LICENCE, DECOVNET_LICENCE

    return DECOVNET_LICENCE if paper == "decovnet" else COVID19NET_LICENCE


def import_published(
    paper: str, classifier: str | Path, lungs: str | Path | None = None, name: str | None = None, force: bool = False
) -> str:
    """Run ``covidct import`` (blocking, a few seconds) and return the classifier's catalogue name.

    Raises :class:`covidct.errors.CovidCTError` with the command's one sentence when the files are not the
    authors' (first mismatching key or shape), a name is taken, or a file is missing.
    """
    args = ["import", paper, "--classifier", Path(classifier)]
    if lungs:
        args += ["--lungs", Path(lungs)]
    if name:
        args += ["--name", name]
    if force:
        args.append("--force")
    start_covidct(args, progress_json=False).wait()  # CommandFailed (a CovidCTError) carries the sentence
    return name or DEFAULT_NAMES[paper]
