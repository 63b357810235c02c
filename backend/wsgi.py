import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
application = get_wsgi_application()

from backend.checks import server_start_check  # noqa: E402  (after Django's setup)

server_start_check()
