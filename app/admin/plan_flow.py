"""The preview-then-confirm flow shared by the bulk paste and the room import.

A plan is shown first; the confirming POST plans again and writes only if the result
still matches what the admin saw (its digest), so nothing changes behind their back.
"""

from flask import flash, redirect
from sqlalchemy.exc import IntegrityError

from app.extensions import db

TAKEN_WHILE_APPLYING = "The room table changed while applying; nothing was written. Check the new preview."


def preview_or_apply(form, make_plan, *, preview, apply, has_changes, nothing, changed, done, table_url):
    """Answer a preview or apply POST. `make_plan()` plans afresh; `preview(plan)` renders it."""
    plan = make_plan()
    if not form.apply.data:
        return preview(plan)
    if form.digest.data != plan.digest():
        flash(changed, "warning")
        return preview(plan)
    if not has_changes(plan):
        flash(nothing, "info")
        return redirect(table_url)
    try:
        apply(plan)
        db.session.commit()
    except IntegrityError:
        # A room or object of the plan was taken meanwhile: nothing was written.
        db.session.rollback()
        flash(TAKEN_WHILE_APPLYING, "warning")
        return preview(make_plan())
    flash(done(plan), "success")
    return redirect(table_url)
