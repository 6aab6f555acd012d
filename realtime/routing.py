from django.urls import path, re_path

from .consumers import NoSuchSocket, SeatMapConsumer

websocket_urlpatterns = [
    path("ws/events/<int:event_id>/", SeatMapConsumer.as_asgi()),
    re_path(r"", NoSuchSocket.as_asgi()),
]
