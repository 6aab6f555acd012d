"""WebSocket frames: HTML fragments that htmx swaps out-of-band by element id."""

from seats.fragments import counts_html, sale_banner_html, seat_html


def version_marker(*, kind: str, version: int) -> str:
    """First element of every frame; the page's live.js reads kind and version from it."""
    return (
        f'<div id="live-version" data-kind="{kind}" data-version="{int(version)}" '
        f'hx-swap-oob="true"></div>'
    )


def delta_frame(delta: dict) -> str:
    parts = [version_marker(kind="delta", version=delta["version"])]
    parts.extend(seat_html(seat, oob=True) for seat in delta["seats"])
    parts.append(counts_html(delta["counts"], oob=True))
    if "sale_state" in delta:
        parts.append(sale_banner_html(delta["sale_state"], oob=True))
    return "".join(parts)
