"""Texts shared by the About sections of the three modules: category, contributors, citations, research use."""

from __future__ import annotations

#: Module category (the folder in Slicer's module selector).
CATEGORY = "COVID-19"

CONTRIBUTORS = ["CovidCTDetect developers"]

#: the extension's documentation (its README); the same address as ``EXTENSION_HOMEPAGE`` in CMakeLists.txt
DOCUMENTATION_URL = "https://github.com/CovidCTDetect/SlicerCovidCTDetect#readme"

CITATIONS = """
<p>Methods implemented (research reproductions, not the authors' code):</p>
<ul>
<li>Zheng C, Deng X, Fu Q, Zhou Q, et al. <i>Deep Learning-based Detection for COVID-19 from Chest CT using
Weak Label.</i> medRxiv 2020, <a href="https://doi.org/10.1101/2020.03.12.20027185">doi:10.1101/2020.03.12.20027185</a>
(2D UNet lung segmentation, DeCoVNet).</li>
<li>Wang S, Zha Y, Li W, et al. <i>A Fully Automatic Deep Learning System for COVID-19 Diagnostic and
Prognostic Analysis.</i> medRxiv 2020, <a href="https://doi.org/10.1101/2020.03.24.20042317">doi:10.1101/2020.03.24.20042317</a>
(COVID-19Net, Cox prognosis).</li>
</ul>
"""

RESEARCH_USE = """
<p><b>Research use only.</b> This is research software, not a medical device: it is not cleared or validated
for clinical use and must not be used to diagnose or treat anyone. Bundled weights are demonstration weights;
their model cards say exactly what they were trained on.</p>
"""

ACKNOWLEDGEMENT = """
<p>Test CT: Chest Imaging Platform (Brigham and Women's Hospital), COPDGene case, CIP licence.
Built on 3D Slicer, SimpleITK and PyTorch.</p>
"""


def help_text(summary: str) -> str:
    """A module's help: its one-paragraph ``summary`` (HTML), then the citations and the research-use statement."""
    link = f'<p>For more information, see the <a href="{DOCUMENTATION_URL}">documentation</a>.</p>'
    return f"<p>{summary}</p>{link}{CITATIONS}{RESEARCH_USE}"


def forget_libraries() -> None:
    """Drop the extension's libraries (``covidct``, ``CovidCTDetectLib``) from ``sys.modules``, so that a
    module's developer Reload imports their edited code instead of the cached one."""
    import sys

    for name in [name for name in sys.modules if name.split(".")[0] in ("covidct", "CovidCTDetectLib")]:
        del sys.modules[name]
