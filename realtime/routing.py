from django.urls import path

from .consumers import SeatMapConsumer

websocket_urlpatterns = [
    path("ws/events/<int:event_id>/", SeatMapConsumer.as_asgi()),
]
