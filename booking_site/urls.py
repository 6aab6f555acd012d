from django.contrib import admin
from django.urls import include, path

from booking_site import accounts

urlpatterns = [
    path("", include("events.urls")),
    path("", include("seats.urls")),
    path("api/", include("seats.api_urls")),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
