"""A site folder (`to-sdtm --site DIR`): what one hospital's FHIR needs that the study's specs cannot know.

    site.yaml        optional: site_id (SITEID of subjects enrolled straight in the overall study, when
                     the hospital sends one ResearchStudy and no site study); study (the hospital's name for
                     the trial's ResearchStudy, "ResearchStudy/<id>" or an identifier "system|value", when
                     none of its identifiers is one study.yaml lists)
    *.json           ConceptMaps from the hospital's code systems to the study's concepts
                     (concept_maps.py)

Any other file is refused, naming it: a file the converter would silently skip is a map the site thinks
it gave.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError
from .concept_maps import Translations, read_concept_maps
from .yaml_files import read_yaml

SITE_KEYS = ("site_id", "study")  # each read by the converter; any other key is refused


@dataclass
class Site:
    directory: Path
    site_id: str | None = None
    study: str | None = None
    translations: Translations = field(default_factory=Translations)


def load_site(directory: str | os.PathLike) -> Site:
    folder = Path(directory)
    if not folder.is_dir():
        raise SpecError(f"{folder}: --site names no folder")
    site = Site(folder)
    config = folder / "site.yaml"
    if config.is_file():
        doc = read_yaml(config)
        unknown = sorted(set(doc) - set(SITE_KEYS))
        if unknown:
            raise SpecError(f"{config}: unknown key {unknown[0]!r} (known: {', '.join(SITE_KEYS)})")
        for key in SITE_KEYS:
            if key in doc:
                if not isinstance(doc[key], str | int) or not str(doc[key]).strip():
                    raise SpecError(f"{config}: {key} must be a non-empty text, got {doc[key]!r}")
                setattr(site, key, str(doc[key]).strip())
    others = sorted(p.name for p in folder.iterdir() if p.name != "site.yaml" and not p.name.startswith(".")
                    and not (p.is_file() and p.suffix.lower() == ".json"))
    if others:
        raise SpecError(f"{folder / others[0]}: not a site file (site.yaml, and ConceptMaps as .json)")
    read_concept_maps(sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json"), site.translations)
    return site
