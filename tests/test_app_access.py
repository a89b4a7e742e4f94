"""Read-only mode and sign-in (ui/access.py, gallery_core.app.settings): a public viewer sees no action that
writes to disk; with [auth] configured a signed-out visitor sees only the sign-in button, and decisions record
the signed-in user; without [auth] the app is as it always was."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import streamlit

from gallery_core.app import decisions
from gallery_core.app.serve import serve_invocation
from gallery_core.app.settings import READ_ONLY_ENV, load_app_settings
from gallery_core.errors import ConfigError
from ui.navigation import PAGES

pytest_plugins = ["conftest_app"]

WRITE_BUTTONS = ("audit_confirm", "audit_wrong", "audit_undo")


def write_actions(at) -> list[str]:
    """Every widget on the page that writes to the server's disk."""
    found = [b.key for b in at.button if b.key in WRITE_BUTTONS]
    found += [t.key for t in at.text_input if str(t.key).startswith(("audit_corrected_", "audit_selection_folder",
                                                                       "retrieve_selection_folder"))]
    found += [f.label for f in at.get("form_submit_button") if f.label == "Write catalogue"]
    return found


@pytest.fixture
def audit_app(run_copier, monkeypatch, new_app):
    root = run_copier("demo")
    monkeypatch.setenv("GALLERY_CORE_ARTIFACTS", str(root.parent))

    def _open(page: str = "ui/pages/audit.py"):
        at = new_app()
        at.run()
        at.switch_page(page).run()
        assert not at.exception
        return at

    return root, _open


def test_read_only_hides_every_write_action(audit_app, monkeypatch):
    root, open_page = audit_app
    writable = open_page()
    assert sorted(write_actions(writable)) == ["Write catalogue", "audit_confirm", "audit_corrected_" +
                                               writable.selectbox(key="audit_listing").value, "audit_selection_folder",
                                               "audit_undo", "audit_wrong"]
    retrieve = open_page("ui/pages/retrieve.py")
    retrieve.button(key="add_photo_0").click().run()
    assert "Write catalogue" in write_actions(retrieve)
    decisions.AuditDecisions(root).decide(writable.selectbox(key="audit_listing").value, "is_chain", "is_chain", 1,
                                          decisions.WRONG, 0, decided_by="ana@example.com")

    monkeypatch.setenv(READ_ONLY_ENV, "1")
    for page in PAGES:
        at = open_page(page.script)
        assert write_actions(at) == [], page.title
        assert any("Read-only" in c.value for c in at.sidebar.caption), page.title
    at = open_page()
    assert any("marked wrong" in s.value and "by ana@example.com" in s.value for s in at.success)  # still shown
    assert at.get("download_button")[-1].proto.label.startswith("Download corrections CSV (1 values")
    retrieve = open_page("ui/pages/retrieve.py")
    retrieve.button(key="add_photo_0").click().run()
    assert not retrieve.exception and write_actions(retrieve) == []
    assert [b.key for b in retrieve.get("download_button")] == ["retrieve_selection_csv"]  # reading stays


def test_read_only_never_creates_the_decisions_database(audit_app, monkeypatch):
    root, open_page = audit_app
    monkeypatch.setenv(READ_ONLY_ENV, "yes")
    open_page()
    assert not (root / "user").exists()


class SignedIn(dict):
    is_logged_in = True


class SignedOut(dict):
    is_logged_in = False


AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "id",
        "client_secret": "secret", "server_metadata_url": "https://accounts.example.com/.well-known/openid-configuration"}


def test_sign_in_is_required_when_auth_is_configured_and_decisions_carry_the_user(audit_app, monkeypatch, new_app):
    root, open_page = audit_app
    monkeypatch.setattr(streamlit, "user", SignedOut())
    at = new_app()
    at.secrets["auth"] = AUTH
    at.run()
    assert not at.exception
    assert [b.key for b in at.button] == ["sign_in"] and not at.dataframe  # nothing else is shown

    monkeypatch.setattr(streamlit, "user", SignedIn(email="ana@example.com", name="Ana"))
    at = new_app()
    at.secrets["auth"] = AUTH
    at.run()
    at.switch_page("ui/pages/audit.py").run()
    assert any("Signed in as **ana@example.com**" in c.value for c in at.sidebar.caption)
    assert [b.key for b in at.sidebar.button] == ["sign_out"]
    listing_id = at.selectbox(key="audit_listing").value
    at.button(key="audit_confirm").click().run()
    assert decisions.AuditDecisions(root).get(listing_id, "is_chain")["decided_by"] == "ana@example.com"


def test_without_auth_nobody_signs_in(audit_app):
    root, open_page = audit_app
    at = open_page()
    assert not [b for b in at.button if b.key in ("sign_in", "sign_out")]
    listing_id = at.selectbox(key="audit_listing").value
    at.button(key="audit_confirm").click().run()
    assert decisions.AuditDecisions(root).get(listing_id, "is_chain")["decided_by"] == ""


def test_settings_come_from_the_environment_then_the_file(tmp_path):
    assert not load_app_settings({}, cwd=tmp_path).read_only
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "gallery-core.toml").write_text("read_only = true\n")
    assert load_app_settings({}, cwd=tmp_path).read_only
    assert not load_app_settings({READ_ONLY_ENV: "0"}, cwd=tmp_path).read_only  # the variable wins
    other = tmp_path / "public.toml"
    other.write_text("read_only = false\n")
    assert not load_app_settings({"GALLERY_CORE_APP_CONFIG": str(other)}, cwd=tmp_path).read_only
    other.write_text("read_only = 'sure'\n")
    with pytest.raises(ConfigError, match=r"public.toml: read_only must be true or false, got 'sure'"):
        load_app_settings({"GALLERY_CORE_APP_CONFIG": str(other)})
    other.write_text("readonly = true\n")
    with pytest.raises(ConfigError, match=r"unknown settings \['readonly'\]"):
        load_app_settings({"GALLERY_CORE_APP_CONFIG": str(other)})
    with pytest.raises(ConfigError, match="GALLERY_CORE_READ_ONLY='maybe'"):
        load_app_settings({READ_ONLY_ENV: "maybe"}, cwd=tmp_path)


def test_serve_read_only_starts_streamlit_read_only(tmp_path):
    args = argparse.Namespace(read_only=True, port=8600, artifacts=tmp_path)
    argv, env, cwd = serve_invocation(args, environ={})
    assert argv[1:5] == ["-m", "streamlit", "run", "app.py"] and "8600" in argv
    assert env[READ_ONLY_ENV] == "1" and env["GALLERY_CORE_ARTIFACTS"] == str(tmp_path.resolve())
    assert (cwd / ".streamlit" / "config.toml").is_file()  # started from the repository root
    argv, env, _ = serve_invocation(argparse.Namespace(read_only=False, port=8501, artifacts=None), environ={})
    assert READ_ONLY_ENV not in env
    assert Path(argv[0]).name.startswith("python")
