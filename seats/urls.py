from django.urls import path

from . import views

urlpatterns = [
    path("events/<int:event_id>/seats/toggle/", views.seat_toggle, name="seat-toggle"),
    path("events/<int:event_id>/seats/find/", views.seat_find, name="seat-find"),
    path("events/<int:event_id>/hold/", views.hold_panel, name="hold-panel"),
    path("events/<int:event_id>/hold/release/", views.hold_release, name="hold-release"),
    path("events/<int:event_id>/checkout/", views.checkout, name="checkout"),
    path("bookings/", views.booking_list, name="booking-list"),
    path("bookings/<int:booking_id>/", views.booking_detail, name="booking-detail"),
    path("bookings/<int:booking_id>/cancel/", views.booking_cancel, name="booking-cancel"),
]
