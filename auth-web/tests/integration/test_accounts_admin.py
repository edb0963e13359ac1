"""Registration, sessions (list, revoke, logout, timeouts), and the admin pages (search, disable, delete, audit)."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from auth_web.models import AuditEvent, FaceTemplate, User

from .conftest import PASSWORD, Browser, audit_rows, create_user, sign_in_directly, unique_username


def csrf_of(browser: Browser, path: str) -> str:
    return browser.refresh_csrf(path)


def test_registration_rules(make_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    browser = Browser(app.test_client())
    username = unique_username("Reg")
    response = browser.register(username)
    assert response.status_code == 302 and response.headers["Location"].endswith("/enroll")
    assert browser.signed_in_as() == username
    assert audit_rows(db_engine, username, "register")[-1].reason == "OK"
    other = Browser(app.test_client())
    taken = other.register(username.upper())  # case-insensitive uniqueness
    assert taken.status_code == 400 and "taken" in taken.get_data(as_text=True)
    weak = other.register(unique_username(), password="short")
    assert weak.status_code == 400 and "at least" in weak.get_data(as_text=True)
    bad_name = other.register("<script>")
    assert bad_name.status_code == 400 and "Usernames are" in bad_name.get_data(as_text=True)
    with Session(db_engine) as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None and user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash


CHROME_ON_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


def test_dashboard_after_registration(make_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    browser = Browser(app.test_client())
    browser.client.environ_base["HTTP_USER_AGENT"] = CHROME_ON_LINUX
    username = unique_username()
    assert browser.register(username).status_code == 302
    page = browser.client.get("/account").get_data(as_text=True)
    # Registration signed the user in: that is their last sign-in, not "never".
    # A <time> in UTC (static/js/page.js shows it in the browser's time zone).
    last_sign_in = re.search(r"<dt>Last sign-in</dt><dd><time [^>]*>([^<]*)</time></dd>", page)
    assert last_sign_in and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", last_sign_in.group(1)), page
    with Session(db_engine) as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None and user.last_login_at is not None
    # The sessions table names the browser; the full User-Agent stays in the tooltip.
    assert f'<td title="{CHROME_ON_LINUX}">Chrome on Linux</td>' in page


def test_sessions_list_revoke_and_logout(make_app, db_engine, redis_client) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    prefix = app.config["FACEAUTH_SETTINGS"].redis_prefix
    user_id = create_user(db_engine, unique_username())
    laptop, phone = Browser(app.test_client()), Browser(app.test_client())
    sign_in_directly(laptop, user_id)
    sign_in_directly(phone, user_id)
    assert redis_client.scard(f"{prefix}user_sessions:{user_id}") == 2
    page = laptop.client.get("/account").get_data(as_text=True)
    handles = re.findall(r"/account/sessions/([0-9a-f]+)/revoke", page)
    assert len(handles) == 1 and "This device" in page  # the other session can be revoked, this one is marked
    # The cookie value (the session id) never appears in the page.
    assert laptop.client.get_cookie("faceauth_session").value not in page
    token = csrf_of(laptop, "/account")
    response = laptop.client.post(f"/account/sessions/{handles[0]}/revoke", data={"csrf_token": token})
    assert response.status_code == 302
    assert phone.client.get("/account").status_code == 302  # the phone is signed out
    assert laptop.client.get("/account").status_code == 200
    # Logout deletes the server-side session.
    token = csrf_of(laptop, "/account")
    assert laptop.client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert laptop.client.get("/account").status_code == 302
    assert redis_client.scard(f"{prefix}user_sessions:{user_id}") == 0
    assert not list(redis_client.scan_iter(match=f"{prefix}session:*")) or all(
        b'"user_id": ' + str(user_id).encode() not in redis_client.get(key)
        for key in redis_client.scan_iter(match=f"{prefix}session:*")
    )


def test_idle_and_absolute_timeouts(make_app, db_engine, redis_client) -> None:  # type: ignore[no-untyped-def]
    app = make_app(session_idle_seconds=120, session_absolute_seconds=600)
    prefix = app.config["FACEAUTH_SETTINGS"].redis_prefix
    user_id = create_user(db_engine, unique_username())
    browser = Browser(app.test_client())
    sign_in_directly(browser, user_id)
    assert browser.client.get("/account").status_code == 200
    keys = list(redis_client.scan_iter(match=f"{prefix}session:*"))
    assert len(keys) == 1
    assert 0 < redis_client.ttl(keys[0]) <= 120  # idle timeout = the key's TTL
    # Absolute timeout: a session created long ago is refused even if it was active a moment ago.
    import json

    stored = json.loads(redis_client.get(keys[0]))
    stored["created"] -= 601
    redis_client.set(keys[0], json.dumps(stored), ex=100)
    assert browser.client.get("/account").status_code == 302
    assert not redis_client.exists(keys[0])


def test_non_admins_cannot_reach_admin_pages(make_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    browser = Browser(app.test_client())
    assert browser.client.get("/admin/users").status_code == 302  # anonymous: to the login page
    sign_in_directly(browser, create_user(db_engine, unique_username()))
    assert browser.client.get("/admin/users").status_code == 403
    assert browser.client.get("/admin/audit").status_code == 403


def test_admin_delete_removes_templates_and_sessions_keeps_audit(make_app, db_engine, redis_client) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    prefix = app.config["FACEAUTH_SETTINGS"].redis_prefix
    admin_id = create_user(db_engine, unique_username("admin"), role="admin")
    victim_name = unique_username("victim")
    victim_id = create_user(db_engine, victim_name, templates=3)
    victim, admin = Browser(app.test_client()), Browser(app.test_client())
    sign_in_directly(victim, victim_id)
    assert victim.signed_in_as() == victim_name
    sign_in_directly(admin, admin_id)
    # A login event of the victim exists before the deletion.
    victim_browser_login = Browser(app.test_client())
    victim_browser_login.login(victim_name, [b"\xff\xd8\xff"] * 2)  # a bad capture: audited, refused
    page = admin.client.get(f"/admin/users?q={victim_name[:8].upper()}").get_data(as_text=True)
    assert victim_name in page
    token = csrf_of(admin, "/admin/users")
    response = admin.client.post(f"/admin/users/{victim_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    with Session(db_engine) as session:
        assert session.get(User, victim_id) is None
        assert session.scalar(select(func.count()).where(FaceTemplate.user_id == victim_id)) == 0
        deleted = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "admin_delete", AuditEvent.user_id == victim_id)
        ).all()
        assert len(deleted) == 1 and deleted[0].actor_user_id == admin_id
        assert deleted[0].details["templates_deleted"] == 3
    # The victim's browser is signed out at once, and no session of theirs remains in Redis.
    assert victim.client.get("/account").status_code == 302
    assert redis_client.scard(f"{prefix}user_sessions:{victim_id}") == 0
    # The audit log still shows the victim's events (by user id).
    log_page = admin.client.get(f"/admin/audit?user_id={victim_id}").get_data(as_text=True)
    assert "admin_delete" in log_page


def test_admin_disable_signs_out_and_blocks_login(make_app, db_engine, frames_a_login) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    admin_id = create_user(db_engine, unique_username("admin"), role="admin")
    name = unique_username("user")
    user_id = create_user(db_engine, name, templates=2)
    user, admin = Browser(app.test_client()), Browser(app.test_client())
    sign_in_directly(user, user_id)
    sign_in_directly(admin, admin_id)
    token = csrf_of(admin, "/admin/users")
    assert admin.client.post(f"/admin/users/{user_id}/disable", data={"csrf_token": token}).status_code == 302
    assert user.client.get("/account").status_code == 302
    # Cannot disable oneself.
    token = csrf_of(admin, "/admin/users")
    admin.client.post(f"/admin/users/{admin_id}/disable", data={"csrf_token": token})
    with Session(db_engine) as session:
        assert session.get(User, admin_id).status == "active"
        assert session.get(User, user_id).status == "disabled"
    # The audit page filters.
    page = admin.client.get("/admin/audit?event=admin_disable&result=success").get_data(as_text=True)
    assert "admin_disable" in page and name in page
    token = csrf_of(admin, "/admin/users")
    assert admin.client.post(f"/admin/users/{user_id}/enable", data={"csrf_token": token}).status_code == 302
    with Session(db_engine) as session:
        assert session.get(User, user_id).status == "active"


def test_deleting_face_data(make_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    user_id = create_user(db_engine, unique_username(), templates=3)
    browser = Browser(app.test_client())
    sign_in_directly(browser, user_id)
    token = csrf_of(browser, "/account")
    # Without the confirmation field: to the confirmation page, nothing deleted.
    response = browser.client.post("/enroll/delete", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/enroll/delete")
    with Session(db_engine) as session:
        assert session.scalar(select(func.count()).where(FaceTemplate.user_id == user_id)) == 3
    page = browser.client.get("/enroll/delete").get_data(as_text=True)
    assert "you cannot sign in" in page and 'name="confirm" value="delete"' in page
    response = browser.client.post("/enroll/delete", data={"csrf_token": token, "confirm": "delete"})
    assert response.status_code == 302
    with Session(db_engine) as session:
        assert session.scalar(select(func.count()).where(FaceTemplate.user_id == user_id)) == 0
    # The account page says how to get back: enroll now, while the sign-in is fresh.
    page = browser.client.get("/account").get_data(as_text=True)
    assert "Enroll now" in page and "Face data deleted" in page
