"""Only allauth's headless API is mounted (HEADLESS_ONLY: no server-rendered account pages)."""

from django.urls import include, path

urlpatterns = [
    path("_allauth/", include("allauth.headless.urls")),
]
