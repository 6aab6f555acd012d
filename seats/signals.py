"""What the seat domain announces. The transport (realtime) connects in its AppConfig.ready;
the domain never imports it."""

from django.dispatch import Signal

# Sent once a transaction that changed seats (or a sale state) has committed, with
# `delta`: a seats.payloads.SeatDelta. Never sent for a transaction that rolled back.
seats_changed = Signal()
