"""Sign-up and login (Django's view, and the admin's); logout and password change are
Django's own views.

A seat clicked while signed out is held once the visitor has signed in or signed up
(seats.pages.hold_seat_picked_signed_out), in the same POST.

All are rate-limited per client address (seats.ratelimits): login form posts, the site's
and the admin's counted together, and accounts created by sign-up. Past the limit the
answer is a plain 429 page with Retry-After.
"""

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from seats import ratelimits
from seats.pages import hold_seat_picked_signed_out


def signup(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    form: UserCreationForm[User]
    if request.method == "POST":
        decision = ratelimits.signup_attempt(request)
        if not decision.allowed:
            return ratelimits.too_many_requests_page(decision, back=request.get_full_path())
        form = UserCreationForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
            hold_seat_picked_signed_out(request, user)
            return redirect(next_url or "event-list")
        ratelimits.give_back(decision)
    else:
        form = UserCreationForm()
    return render(request, "registration/signup.html", {"form": form, "next": next_url})


class LoginView(auth_views.LoginView):
    """Django's login view; each form post counts against the address's login limit."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        decision = ratelimits.login_attempt(request)
        if not decision.allowed:
            return ratelimits.too_many_requests_page(decision, back=request.get_full_path())
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        hold_seat_picked_signed_out(self.request, form.get_user())
        return response


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's login view; each form post counts against the address's login limit,
    with the site's login posts."""
    if request.method == "POST":
        decision = ratelimits.login_attempt(request)
        if not decision.allowed:
            return ratelimits.too_many_requests_page(decision, back=request.get_full_path())
    return admin.site.login(request)
