from django.urls import path, re_path

from . import api

urlpatterns = [
    path("events/<int:event_id>/seats", api.seat_map, name="api-seat-map"),
    path("events/<int:event_id>/holds", api.create_hold, name="api-holds"),
    path("events/<int:event_id>/bookings", api.create_booking, name="api-bookings"),
    path("holds/<int:hold_id>", api.release_hold, name="api-hold"),
    path("bookings/<int:booking_id>", api.cancel_booking, name="api-booking"),
    # Anything else under /api/ answers JSON too, not the site's HTML 404 page.
    re_path(r"", api.not_found),
]
