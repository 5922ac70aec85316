"""URLs of the workflow editor, definitions, versions and the library (included by workflows/urls.py)."""

from django.urls import path

from workflows import editor_views as views
from workflows import migration_views

urlpatterns = [
    path("definitions/", views.definition_list, name="definition-list"),
    path("definitions/new/", views.definition_new, name="definition-new"),
    path("definitions/import/", views.definition_import, name="definition-import"),
    path("definitions/expression/validate/", views.expression_validate, name="expression-validate"),
    path("definitions/<str:key>/", views.definition_detail, name="definition-detail"),
    path("definitions/<str:key>/edit/", views.editor, name="editor"),
    path("definitions/<str:key>/edit/save/", views.editor_save, name="editor-save"),
    path("definitions/<str:key>/edit/validate/", views.editor_validate, name="editor-validate"),
    path("definitions/<str:key>/edit/publish/", views.editor_publish, name="editor-publish"),
    path("definitions/<str:key>/edit/check/", views.editor_check, name="editor-check"),
    path("definitions/<str:key>/edit/discard/", views.draft_discard, name="draft-discard"),
    path("definitions/<str:key>/compare/", views.version_compare, name="version-compare"),
    path("definitions/<str:key>/migrate/", migration_views.migrate, name="migrate"),
    path("definitions/<str:key>/migrate/result/", migration_views.migrate_result, name="migrate-result"),
    path("definitions/<str:key>/export/", views.version_export, name="definition-export"),
    path("definitions/<str:key>/versions/<int:number>/", views.version_view, name="version-view"),
    path("definitions/<str:key>/versions/<int:number>/export/", views.version_export, name="version-export"),
    path("library/", views.library, name="library"),
    path("library/<slug:slug>/install/", views.library_install, name="library-install"),
]
