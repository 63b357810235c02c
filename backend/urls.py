from django.contrib import admin
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from backend.payments.notifications import NOTIFICATION_PATH
from backend.payments.views import yookassa_notification


class FaviconView(RedirectView):
    """/favicon.ico, which browsers ask for on their own: the admin's icon (its pages link
    it too, backend/templates/admin/base_site.html), never a 404 in the log."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("site/favicon.svg")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("favicon.ico", FaviconView.as_view()),
    path(NOTIFICATION_PATH.lstrip("/"), yookassa_notification),
]
