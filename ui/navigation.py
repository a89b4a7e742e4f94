"""The app's pages, in sidebar order: one line per page (its script under ``ui/pages/``, title, icon).

``app.py`` builds the navigation from this list, and the tests and the app benchmark walk it, so a new
page is one new file in ``ui/pages/`` plus one line here. The scripts live under ``ui/`` rather than in a
``pages/`` folder beside ``app.py`` on purpose: Streamlit treats such a folder as a multipage app of its
own and serves a deep link (``/retrieve``) without running ``app.py``, without its sidebar run picker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    script: str  # relative to the repository root (app.py's folder)
    title: str
    icon: str
    default: bool = False


PAGES: tuple[PageSpec, ...] = (
    PageSpec("ui/pages/overview.py", "Overview", ":material/dashboard:", default=True),
    PageSpec("ui/pages/map.py", "Map", ":material/scatter_plot:"),
    PageSpec("ui/pages/retrieve.py", "Retrieve", ":material/image_search:"),
    PageSpec("ui/pages/listing.py", "Listing", ":material/photo_library:"),
    PageSpec("ui/pages/audit.py", "Audit", ":material/fact_check:"),
    PageSpec("ui/pages/model.py", "Model", ":material/monitoring:"),
)


def page(title: str) -> PageSpec:
    """The page with this title."""
    for spec in PAGES:
        if spec.title == title:
            return spec
    raise KeyError(f"no page titled {title!r}; the pages are {[p.title for p in PAGES]}")


LISTING_PAGE = page("Listing").script
