"""The app's pages, in sidebar order: one line per page (its script under ``ui/pages/``, title, icon, URL path).

``app.py`` builds the navigation from this list, and the tests and the app benchmarks walk it, so a new
page is one new file in ``ui/pages/`` plus one line here. The scripts live under ``ui/`` rather than in a
``pages/`` folder beside ``app.py`` on purpose: Streamlit treats such a folder as a multipage app of its
own and serves a deep link (``/retrieve``) without running ``app.py``, without its sidebar run picker.

Each page's URL path is set here rather than left to Streamlit, which infers it from the script's file
name: renaming a script then cannot break links that users keep (``/listing?listing=L000123``). The
default page is served at the root URL (``/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True)
class PageSpec:
    script: str  # relative to the repository root (app.py's folder)
    title: str
    icon: str
    url_path: str  # the page's address: http://host:port/<url_path>
    default: bool = False


PAGES: tuple[PageSpec, ...] = (
    PageSpec("ui/pages/overview.py", "Overview", ":material/dashboard:", "overview", default=True),
    PageSpec("ui/pages/map.py", "Map", ":material/scatter_plot:", "map"),
    PageSpec("ui/pages/retrieve.py", "Retrieve", ":material/image_search:", "retrieve"),
    PageSpec("ui/pages/listing.py", "Listing", ":material/photo_library:", "listing"),
    PageSpec("ui/pages/audit.py", "Audit", ":material/fact_check:", "audit"),
    PageSpec("ui/pages/model.py", "Model", ":material/monitoring:", "model"),
)


def page(title: str) -> PageSpec:
    """The page with this title."""
    for spec in PAGES:
        if spec.title == title:
            return spec
    raise KeyError(f"no page titled {title!r}; the pages are {[p.title for p in PAGES]}")


def page_url(title: str, **query: str) -> str:
    """A page's address relative to the app's root ("listing?listing=L000123"), e.g. for a table's link column."""
    spec = page(title)
    path = "" if spec.default else spec.url_path
    return path + (f"?{urlencode(query)}" if query else "")


LISTING_PAGE = page("Listing").script
