import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
application = get_asgi_application()

from backend.checks import server_start_check  # noqa: E402  (after Django's setup)

server_start_check()
