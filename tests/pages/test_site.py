"""What every page shares (templates/base.html) and the site-wide addresses beside them."""

from django.templatetags.static import static
from django.urls import reverse

ICON = static("favicon.svg")


def test_favicon_ico_leads_to_the_icon_which_is_served(client, db):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response.url == ICON
    icon = client.get(ICON)
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content)


def test_pages_link_the_icon(client, event, alice):
    link = f'<link rel="icon" href="{ICON}" type="image/svg+xml">'

    pages = [reverse("event-list"), reverse("event-detail", args=[event.pk]), reverse("login")]
    for url in pages:
        assert link in client.get(url).content.decode(), url
    client.force_login(alice)
    assert link in client.get(reverse("booking-list")).content.decode()
