from channels.routing import ProtocolTypeRouter


def build_application(django_asgi_app):
    return ProtocolTypeRouter({"http": django_asgi_app})
