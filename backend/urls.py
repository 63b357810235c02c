from django.contrib import admin
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView


class FaviconView(RedirectView):
    """/favicon.ico, which browsers ask for on their own: the admin's icon (its pages link
    it too, backend/templates/admin/base_site.html), never a 404 in the log."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("site/favicon.svg")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("favicon.ico", FaviconView.as_view()),
]
