"""The caller's own solve history (list, read, erase, export) and the administrators' view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, stream_with_context
from flask_smorest import Blueprint

from app.auth.decorators import authenticated, current_user
from app.db import utcnow
from app.history import export, service
from app.history.schemas import (
    AdminHistoryQuerySchema,
    DeletedSchema,
    ExportQuerySchema,
    HistoryEntryDetailSchema,
    HistoryPageSchema,
    HistoryQuerySchema,
)

bp = Blueprint("history", __name__, url_prefix="/api/v2/history",
               description="Your solve requests: list, read, export and erase")
admin_bp = Blueprint("history_admin", __name__, url_prefix="/api/v2/admin/history",
                     description="Any user's solve history (administrators)")

_BAD_QUERY = "A query parameter is invalid; `errors` points at it"
_NOT_FOUND = "No entry with this id among yours"
_EXPORT_DOC = {
    "200": {
        "description": "Every matching entry, newest first, streamed; an attachment",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def _filters(args: Mapping[str, Any]) -> service.Filters:
    return service.Filters(args.get("status"), args.get("since"), args.get("until"))


@bp.get("")
@authenticated(bp)
@bp.arguments(HistoryQuerySchema, location="query")
@bp.response(200, HistoryPageSchema)
@bp.alt_response(422, description=_BAD_QUERY)
def list_history(args: dict[str, Any]):
    """Your solve requests, newest first; follow `next_cursor` for older ones."""
    return service.list_entries(current_user().id, _filters(args), args["limit"],
                                args.get("cursor"))


@bp.get("/<int:entry_id>")
@authenticated(bp)
@bp.response(200, HistoryEntryDetailSchema)
@bp.alt_response(404, description=_NOT_FOUND)
def get_history_entry(entry_id: int):
    """One of your solve requests with its full input and result (or validation error)."""
    return service.get_entry(current_user().id, entry_id)


@bp.delete("/<int:entry_id>")
@authenticated(bp)
@bp.response(204)
@bp.alt_response(404, description=_NOT_FOUND)
def delete_history_entry(entry_id: int):
    """Erase one of your solve requests."""
    service.delete_entry(current_user().id, entry_id)


@bp.delete("")
@authenticated(bp)
@bp.response(200, DeletedSchema)
def delete_history():
    """Erase all of your solve requests."""
    return {"deleted": service.delete_all(current_user().id)}


@bp.get("/export")
@authenticated(bp)
@bp.arguments(ExportQuerySchema, location="query")
@bp.alt_response(422, description=_BAD_QUERY)
@bp.doc(responses=_EXPORT_DOC)
def export_history(args: dict[str, Any]):
    """Download all your solve requests (NDJSON or CSV), streamed with bounded memory."""
    kind = args["format"]
    chunks = service.export_chunks(current_user().id, _filters(args))
    filename = f"history-{utcnow():%Y%m%dT%H%M%SZ}.{kind}"
    return Response(
        stream_with_context(export.WRITERS[kind](chunks)),
        mimetype=export.CONTENT_TYPES[kind],
        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                 "Cache-Control": "no-store"},
    )


@admin_bp.get("")
@authenticated(admin_bp, admin=True)
@admin_bp.arguments(AdminHistoryQuerySchema, location="query")
@admin_bp.response(200, HistoryPageSchema)
@admin_bp.alt_response(404, description="No user with this name")
@admin_bp.alt_response(422, description=_BAD_QUERY)
def list_user_history(args: dict[str, Any]):
    """Any user's solve requests, newest first (administrators only)."""
    user = service.user_by_name(args["user"])
    return service.list_entries(user.id, _filters(args), args["limit"], args.get("cursor"))
