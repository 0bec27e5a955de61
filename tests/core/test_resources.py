"""The shipped bundles are found from a clone, from a regular install and from MEDVIEWER_RESOURCES."""

import sysconfig
import tomllib
from pathlib import Path

from medviewer.core import resources

ROOT = Path(__file__).resolve().parents[2]


def test_a_clone_reads_its_own_resources_folder(monkeypatch):
    monkeypatch.delenv("MEDVIEWER_RESOURCES", raising=False)
    assert resources.resource_path("click_segment_bundle") == ROOT / "resources" / "click_segment_bundle"


def test_medviewer_resources_comes_first(monkeypatch, tmp_path):
    (tmp_path / "click_segment_bundle").mkdir()
    monkeypatch.setenv("MEDVIEWER_RESOURCES", str(tmp_path))
    assert resources.resource_path("click_segment_bundle") == tmp_path / "click_segment_bundle"
    assert resources.resource_path("no_such_bundle") == ROOT / "resources" / "no_such_bundle"


def test_an_installed_copy_is_found_under_the_prefix(monkeypatch, tmp_path):
    installed = tmp_path / "share" / "medviewer" / "resources" / "click_segment_bundle"
    installed.mkdir(parents=True)
    monkeypatch.delenv("MEDVIEWER_RESOURCES", raising=False)
    monkeypatch.setattr(resources, "SOURCE_TREE", tmp_path / "not-a-clone")
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    assert resources.resource_path("click_segment_bundle") == installed


def test_a_regular_install_carries_every_bundle_file():
    """pyproject's data-files (what a wheel puts under <prefix>/share) name every file of every
    bundle in resources/ (checked once by hand in a built wheel: pip wheel --no-deps .)."""
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    installed = {}
    for target, patterns in data_files.items():
        for pattern in patterns:
            for path in ROOT.glob(pattern):
                installed[path.relative_to(ROOT / "resources")] = Path(target) / path.name
    shipped = [p.relative_to(ROOT / "resources") for p in (ROOT / "resources").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    assert shipped
    for rel in shipped:
        assert installed.get(rel) == Path("share/medviewer/resources") / rel, rel
