from django.urls import include
from django.urls import path

from benchsite.views import DiscoveryView

urlpatterns = [
    path(".well-known/openid-configuration", DiscoveryView.as_view()),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
