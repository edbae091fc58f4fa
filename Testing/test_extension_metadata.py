"""The extension's description files as the Extensions Index checks them: the catalog entry against the index's
own schema (vendored), the formatting its pre-commit wants (multi-line arrays), and the CMake meta-information
(screenshot and icon URLs in this repository, the files they name committed)."""

from __future__ import annotations

import json
import re

from conftest import REPO, TEST_DATA


def test_catalog_entry_validates_against_the_index_schema():
    import jsonschema

    schema = json.loads(
        (TEST_DATA / "extensions-index" / "slicer-extension-catalog-entry-schema-v1.0.1.json").read_text()
    )
    entry = json.loads((REPO / "CovidCTDetect.json").read_text())
    jsonschema.validate(entry, schema)
    assert entry["$schema"] == schema["$id"]
    # the index's prettier settings (multilineArraysWrapThreshold: 0) put every array item on its own line
    text = (REPO / "CovidCTDetect.json").read_text()
    assert not re.search(r'\[ *"', text), "arrays must be multi-line"


def test_cmake_meta_information_points_into_this_repository():
    cmake = (REPO / "CMakeLists.txt").read_text()
    entry = json.loads((REPO / "CovidCTDetect.json").read_text())
    values = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', cmake))
    homepage = values["EXTENSION_HOMEPAGE"]
    assert homepage == entry["scm_url"] and homepage.rsplit("/", 1)[1].startswith("Slicer")
    raw = homepage.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    screenshots = values["EXTENSION_SCREENSHOTURLS"].split()
    assert screenshots and all(url.startswith(raw) for url in screenshots + [values["EXTENSION_ICONURL"]])
    for url in screenshots + [values["EXTENSION_ICONURL"]]:
        assert (REPO / url[len(raw) :]).is_file(), f"{url} names a file that is not committed"
    assert not (REPO / "CovidCTDetect.s4ext").exists()  # the index reads the .json now


def test_module_help_links_to_the_extensions_homepage():
    from CovidCTDetectLib import about

    cmake = (REPO / "CMakeLists.txt").read_text()
    homepage = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', cmake))["EXTENSION_HOMEPAGE"]
    assert about.DOCUMENTATION_URL.startswith(homepage)
    assert f'href="{about.DOCUMENTATION_URL}"' in about.help_text("summary")
