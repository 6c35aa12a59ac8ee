"""WSGI entry point: ``gunicorn allauth_bench.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allauth_bench.settings")

application = get_wsgi_application()
