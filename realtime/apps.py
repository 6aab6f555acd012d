from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        # The seat domain announces committed changes; this app carries them to viewers.
        from seats.signals import seats_changed

        from .publish import on_seats_changed

        seats_changed.connect(on_seats_changed, dispatch_uid="realtime.publish")
