from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path

from booking_site import accounts


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says. Not a
    permanent redirect: the static file's address may change (hashed names)."""
    return HttpResponseRedirect(static("favicon.svg"))


urlpatterns = [
    # First: the API takes most requests under load, and Django tries patterns in order.
    path("api/", include("seats.api_urls")),
    path("favicon.ico", favicon),
    path("", include("events.urls")),
    path("", include("seats.urls")),
    path("accounts/signup/", accounts.signup, name="signup"),
    # Django's auth views (login rate-limited), less password reset: sign-up asks for no
    # e-mail address to send to.
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    # Before admin.site.urls, so the admin's login posts count against the login limit too.
    path("admin/login/", accounts.admin_login),
    path("admin/", admin.site.urls),
]

# A transient database fault outside a view (a middleware saving the session) answers 503.
handler500 = "booking_site.faults.server_error"
