"""Template filters for the customer pages: `{% load seats_tags %}`."""

from django import template

from ..models import Seat

register = template.Library()


@register.filter
def seat_name(seat: Seat) -> str:
    """What customer pages call a seat: "Section Stalls · Row A · Seat 8" (staff pages and
    the API use the short code, "Stalls-A-8")."""
    return f"Section {seat.section} · Row {seat.row_label} · Seat {seat.number}"
