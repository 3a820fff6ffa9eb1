"""On a 390 px phone the whole header fits, Log out included, whatever the user's roles (real Chromium)."""
from __future__ import annotations

import struct

import pytest

from annotations import roles
from annotations.models import Notification
from tests import factories
from tests.e2e.browser import log_in, requires_chromium

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.e2e, requires_chromium, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def expert_user():
    expert = factories.ExpertFactory(user__username="dr.margarethe.oyelaran-schmidt")  # a long name in the header
    Notification.objects.create(user=expert.user, kind="dispute.resolved", title="Your dispute was upheld")
    return expert.user


def lab_user():
    return factories.lab_member(username="annotation-lead@frontier-lab")


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]  # IHDR: width, then height


@pytest.mark.parametrize("make_user", [expert_user, lab_user], ids=["expert", "lab"])
@pytest.mark.parametrize("path", ["/", "/disputes/"])
def test_the_header_fits_a_phone_and_log_out_is_on_screen(new_page, make_user, path):
    user = make_user()
    page = new_page(**PHONE)
    log_in(page, user)
    page.goto(path)
    header = page.locator("header.top")
    assert user.username in header.inner_text()
    overflow = header.evaluate("h => h.scrollWidth")
    assert overflow <= PHONE["width"], f"{path}: the header is {overflow} px wide on a {PHONE['width']} px screen"
    log_out = header.locator("button", has_text="Log out")
    box = log_out.bounding_box()
    assert box is not None, "Log out is not rendered"
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"Log out sits off screen: {box}"
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], f"Log out is below the fold: {box}"
    # The full page, as a phone shows it: nothing wider than the screen (a wider shot means sideways scrolling).
    shot = page.screenshot(full_page=True)
    assert png_width(shot) == PHONE["width"]
    with page.expect_navigation():
        log_out.click()
    assert "/accounts/login/" in page.url


def test_a_user_with_every_role_still_fits(new_page):
    expert = factories.ExpertFactory(user__username="moderating.expert.with.a.lab")
    user = factories.lab_member(username=expert.user.username)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    factories.add_role(user, roles.MODERATOR)
    page = new_page(**PHONE)
    log_in(page, user)
    nav = page.inner_text("header.top nav")
    assert all(link in nav for link in ("Rate", "Wallet", "Campaigns", "Moderation", "API tokens", "Log out"))
    assert page.locator("header.top").evaluate("h => h.scrollWidth") <= PHONE["width"]
    box = page.locator("header.top button", has_text="Log out").bounding_box()
    assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"]
