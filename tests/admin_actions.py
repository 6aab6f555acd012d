"""Running Django admin actions from tests."""

from django.urls import reverse


def act(client, changelist, action, ids):
    """Runs an admin action on the selected ids; returns the messages shown afterwards."""
    response = client.post(
        reverse(changelist),
        {"action": action, "_selected_action": [str(i) for i in ids]},
        follow=True,
    )
    assert response.redirect_chain[-1] == (reverse(changelist), 302)
    return [str(m) for m in response.context["messages"]]
